
/*
 * The directives that need more than nginx's stock setters: each checks its
 * value and says what is wrong, so that "nginx -t" names the directive and
 * the reason.
 */


#include "ngx_http_dss_bill.h"


static void ngx_http_dss_bill_warn_without_id(ngx_conf_t *cf,
    ngx_str_t *directive, ngx_str_t *value);


char *
ngx_http_dss_bill(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->enabled) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* the routes are found below the location's prefix */

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dss_bill\" needs a prefix or exact location "
                           "such as \"location /dss/bill/\", not \"%V\"",
                           &clcf->name);
        return NGX_CONF_ERROR;
    }

    dlcf->enabled = 1;
    dlcf->location = clcf->name;
    dlcf->route_base = dss_bill_route_base_len((const char *) clcf->name.data,
                                               clcf->name.len);
    dlcf->file = cf->conf_file->file.name.data;
    dlcf->line = cf->conf_file->line;

    clcf->handler = ngx_http_dss_bill_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_root(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_str_t        *value, root;
    ngx_file_info_t   fi;

    if (dlcf->root.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    root = value[1];

    if (root.len == 0) {
        return "has an empty path";
    }

    /* health probes watch one fixed directory: no variables here */

    if (ngx_strlchr(root.data, root.data + root.len, '$') != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dss_bill_root\" does not take variables; "
                           "use them in \"dss_bill_path\"");
        return NGX_CONF_ERROR;
    }

    while (root.len > 1 && root.data[root.len - 1] == '/') {
        root.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &root, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the probe and the open need a C string */

    dlcf->root.data = ngx_pnalloc(cf->pool, root.len + 1);
    if (dlcf->root.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(dlcf->root.data, root.data, root.len);
    dlcf->root.data[root.len] = '\0';
    dlcf->root.len = root.len;

    /* H3: storage may be mounted later, so only a warning */

    if (ngx_file_info(dlcf->root.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, ngx_errno,
                           "\"dss_bill_root\" \"%V\" cannot be read; "
                           "the health check answers 503 until it can",
                           &dlcf->root);

    } else if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"dss_bill_root\" \"%V\" is not a directory; "
                           "the health check answers 503 until it is",
                           &dlcf->root);
    }

    return NGX_CONF_OK;
}


/*
 * A path or URL made from other variables than $dss_bill_id may well be
 * right (a map of the id), or may let the client choose the bill ($arg_*):
 * nginx -t says so.
 */

static void
ngx_http_dss_bill_warn_without_id(ngx_conf_t *cf, ngx_str_t *directive,
    ngx_str_t *value)
{
    if (ngx_strnstr(value->data, "dss_bill_id", value->len) == NULL) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"%V\" \"%V\" does not use $dss_bill_id: make "
                           "sure its variables come from the bill id, not "
                           "from the client", directive, value);
    }
}


/*
 * dss_bill_path: what can be judged before any request is refused now (an
 * absolute path, a literal "..", no variable) instead of as a 404 on every
 * download, or the same bill for every id.
 */

char *
ngx_http_dss_bill_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t  *value;

    value = cf->args->elts;

    if (dss_bill_path_template_check((const char *) value[1].data,
                                     value[1].len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"dss_bill_path\" \"%V\" %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    ngx_http_dss_bill_warn_without_id(cf, &cmd->name, &value[1]);

    return ngx_http_set_complex_value_slot(cf, cmd, conf);
}


char *
ngx_http_dss_bill_id_chars(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char              err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t        *value;
    dss_bill_id_rule  rule;

    if (dlcf->id_chars.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (dss_bill_id_rule_set_chars(&rule, (const char *) value[1].data,
                                   value[1].len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_id_chars\" \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    dlcf->id_chars = value[1];

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_id_length(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char              err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_int_t         min, max;
    ngx_str_t        *value;
    dss_bill_id_rule  rule;

    if (dlcf->id_min_length != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    min = ngx_atoi(value[1].data, value[1].len);
    max = ngx_atoi(value[2].data, value[2].len);

    if (min == NGX_ERROR || max == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_id_length\" \"%V %V\": "
                           "expected two whole numbers", &value[1], &value[2]);
        return NGX_CONF_ERROR;
    }

    if (dss_bill_id_rule_set_length(&rule, min, max, err, sizeof(err)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_id_length\" \"%V %V\": %s",
                           &value[1], &value[2], err);
        return NGX_CONF_ERROR;
    }

    dlcf->id_min_length = min;
    dlcf->id_max_length = max;

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_check_positive_size(ngx_conf_t *cf, void *post, void *data)
{
    off_t  *size = data;

    if (*size <= 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_check_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *msec = data;

    if (*msec == 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_upstream_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char                               err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (dlcf->upstream) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (dss_bill_upstream_url_check((const char *) value[1].data,
                                    value[1].len, err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_upstream\" \"%V\": %s",
                           &value[1], err);
        return NGX_CONF_ERROR;
    }

    /* D9: a URL without variables fetches the same bill for every id */

    if (ngx_strlchr(value[1].data, value[1].data + value[1].len, '$') == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"dss_bill_upstream\" \"%V\" holds no variable: "
                           "every bill id would get the same bill; use "
                           "$dss_bill_id", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_http_dss_bill_warn_without_id(cf, &cmd->name, &value[1]);

    dlcf->upstream = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (dlcf->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = dlcf->upstream;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* for the checks that need the whole location, at merge time */
    dlcf->upstream_file = cf->conf_file->file.name.data;
    dlcf->upstream_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* dss_bill_upstream_health_url url | off; checked here, with its line */

char *
ngx_http_dss_bill_upstream_health_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char        err[NGX_HTTP_DSS_BILL_REASON_LEN];
    char       *rv;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") != 0
        && dss_bill_upstream_url_check((const char *) value[1].data,
                                       value[1].len, err, sizeof(err))
           != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"dss_bill_upstream_health_url\" "
                           "\"%V\": %s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    rv = ngx_conf_set_str_slot(cf, cmd, conf);

    return rv;
}


char *
ngx_http_dss_bill_upstream_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    u_char     *p;
    ngx_str_t  *value, *line;

    value = cf->args->elts;

    if (value[1].len == 0
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ':')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ' '))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid header name \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (ngx_strlchr(value[2].data, value[2].data + value[2].len, CR)
        || ngx_strlchr(value[2].data, value[2].data + value[2].len, LF))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value of header \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (dlcf->upstream_headers == NULL) {
        dlcf->upstream_headers = ngx_array_create(cf->pool, 4,
                                                  sizeof(ngx_str_t));
        if (dlcf->upstream_headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    line = ngx_array_push(dlcf->upstream_headers);
    if (line == NULL) {
        return NGX_CONF_ERROR;
    }

    /* "Name: value" and a NUL, as libcurl takes it */

    line->len = value[1].len + 2 + value[2].len;
    line->data = ngx_pnalloc(cf->pool, line->len + 1);
    if (line->data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(line->data, value[1].data, value[1].len);
    *p++ = ':';
    *p++ = ' ';
    p = ngx_cpymem(p, value[2].data, value[2].len);
    *p = '\0';

    return NGX_CONF_OK;
}


char *
ngx_http_dss_bill_upstream_basic_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char       *rv;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_strlchr(value[1].data, value[1].data + value[1].len, ':')
        == NULL)
    {
        return "expects \"user:password\"";
    }

    rv = ngx_conf_set_str_slot(cf, cmd, conf);

    return rv;
}


/*
 * dss_bill_upstream_ssl_trusted_certificate, _ssl_certificate,
 * _ssl_certificate_key: the file is read and checked now, so that nginx -t
 * names what is wrong with it; libcurl gets the text from memory.
 */

char *
ngx_http_dss_bill_upstream_tls_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    char                           err[NGX_HTTP_DSS_BILL_REASON_LEN];
    u_char                        *data;
    ssize_t                        n;
    ngx_str_t                     *value;
    ngx_file_t                     file;
    ngx_file_info_t                fi;
    dss_bill_tls_kind             *kind;
    ngx_http_dss_bill_tls_file_t  *tls;

    tls = (ngx_http_dss_bill_tls_file_t *) (p + cmd->offset);
    kind = cmd->post;

    if (tls->path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    tls->path = value[1];

    if (ngx_conf_full_name(cf->cycle, &tls->path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = tls->path;
    file.log = cf->log;

    file.fd = ngx_open_file(tls->path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &tls->path);
        return NGX_CONF_ERROR;
    }

    data = NULL;
    n = NGX_ERROR;

    /* a PEM bundle of 1 MB is already a very large one */

    if (ngx_fd_info(file.fd, &fi) != NGX_FILE_ERROR
        && ngx_file_size(&fi) <= 1024 * 1024)
    {
        data = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);

        if (data) {
            n = ngx_read_file(&file, data, ngx_file_size(&fi), 0);
        }
    }

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &tls->path);
    }

    if (n == NGX_ERROR || n != ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read \"%V\" (larger than 1m, or changing)",
                           &tls->path);
        return NGX_CONF_ERROR;
    }

    if (dss_bill_tls_check(*kind, data, n, err, sizeof(err)) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid \"%V\" \"%V\": %s",
                           &cmd->name, &tls->path, err);
        return NGX_CONF_ERROR;
    }

    tls->pem.data = data;
    tls->pem.len = n;
    tls->conf_file = cf->conf_file->file.name.data;
    tls->conf_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* dss_bill_pdf_check signature | complete; (D8) */

char *
ngx_http_dss_bill_pdf_check(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_str_t  *value;

    if (dlcf->pdf_check != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "complete") == 0) {
        dlcf->pdf_check = DSS_BILL_PDF_CHECK_COMPLETE;

    } else if (ngx_strcmp(value[1].data, "signature") == 0) {
        dlcf->pdf_check = DSS_BILL_PDF_CHECK_SIGNATURE;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be \"complete\" or \"signature\", "
                           "not \"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
