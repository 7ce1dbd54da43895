
/*
 * Object-store archives (AWS S3, OCI Object Storage, MinIO, Ceph RGW):
 * the dss_bill_upstream_s3* directives, the credentials read at
 * configuration time, and the signing options the core's fetch uses.
 * Signing itself is the core's (core/s3_sign.cpp), per fetch.
 */


#include "ngx_http_dss_bill.h"


/* a shared-credentials file of this size is already a very large one */
#define NGX_HTTP_DSS_BILL_S3_CREDENTIALS_MAX  (64 * 1024)

#define NGX_HTTP_DSS_BILL_S3_DENIED_UNSET    0
#define NGX_HTTP_DSS_BILL_S3_DENIED_ERROR    1
#define NGX_HTTP_DSS_BILL_S3_DENIED_MISSING  2


static ngx_int_t ngx_http_dss_bill_s3_read(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *text);
static ngx_int_t ngx_http_dss_bill_s3_check_headers(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *conf);
static u_char *ngx_http_dss_bill_s3_copy(ngx_conf_t *cf, const char *prefix,
    dss_bill_text *value);


static const char  ngx_http_dss_bill_s3_token_prefix[] =
    "x-amz-security-token: ";


/* dss_bill_upstream_s3 region=REGION [service=SERVICE]; */

char *
ngx_http_dss_bill_upstream_s3(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char         err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t   *value, region, service;
    ngx_uint_t   i;

    if (dlcf->s3.region.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_str_null(&region);
    ngx_str_set(&service, "s3");

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "region=", 7) == 0) {
            region.data = value[i].data + 7;
            region.len = value[i].len - 7;

        } else if (ngx_strncmp(value[i].data, "service=", 8) == 0) {
            service.data = value[i].data + 8;
            service.len = value[i].len - 8;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of \"%V\": expected "
                               "\"region=\" or \"service=\"", &value[i],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (region.data == NULL) {
        return "needs \"region=\" (e.g. region=eu-west-1; MinIO: us-east-1)";
    }

    if (dss_bill_s3_name_check((const char *) region.data, region.len,
                               err, sizeof(err)) != 0
        || dss_bill_s3_name_check((const char *) service.data, service.len,
                                  err, sizeof(err)) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"%V\" region or service: %s",
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    /* the parser ends every argument with a NUL: both are C strings */

    dlcf->s3.region = region;
    dlcf->s3.service = service;

    return NGX_CONF_OK;
}


/*
 * dss_bill_upstream_s3_credentials file [profile=NAME]; read now, by the
 * master, so a rotation is a reload and the workers never need the file.
 * No message says more about the file's text than which key is missing.
 */

char *
ngx_http_dss_bill_upstream_s3_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    char                      err[NGX_HTTP_DSS_BILL_REASON_LEN];
    ngx_str_t                *value, path, profile, text;
    dss_bill_s3_options      *o;
    dss_bill_s3_credentials   creds;

    if (dlcf->s3.credentials.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];
    ngx_str_set(&profile, "default");

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "profile=", 8) != 0
            || value[2].len == 8)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" of \"%V\": "
                               "expected \"profile=NAME\"", &value[2],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        profile.data = value[2].data + 8;
        profile.len = value[2].len - 8;
    }

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_dss_bill_s3_read(cf, &path, &text) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    o = &dlcf->s3.options;

    if (dss_bill_s3_credentials_parse((const char *) text.data, text.len,
                                      (const char *) profile.data,
                                      profile.len, &creds, err, sizeof(err))
        != 0)
    {
        ngx_explicit_memzero(text.data, text.len);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" \"%V\": %s",
                           &cmd->name, &path, err);
        return NGX_CONF_ERROR;
    }

    o->access_key_id = (const char *) ngx_http_dss_bill_s3_copy(cf, "",
                                                  &creds.access_key_id);
    o->secret_access_key = (const char *) ngx_http_dss_bill_s3_copy(cf, "",
                                                  &creds.secret_access_key);
    o->token_header = NULL;

    if (creds.session_token.data) {
        o->token_header = (const char *) ngx_http_dss_bill_s3_copy(cf,
                                 ngx_http_dss_bill_s3_token_prefix,
                                 &creds.session_token);
    }

    /* the file's text is not kept: only the three values are */
    ngx_explicit_memzero(text.data, text.len);

    if (o->access_key_id == NULL || o->secret_access_key == NULL
        || (creds.session_token.data && o->token_header == NULL))
    {
        return NGX_CONF_ERROR;
    }

    dlcf->s3.credentials = path;

    return NGX_CONF_OK;
}


/* dss_bill_upstream_s3_access_denied error | missing; */

char *
ngx_http_dss_bill_upstream_s3_access_denied(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_dss_bill_loc_conf_t *dlcf = conf;

    ngx_str_t  *value;

    if (dlcf->s3.access_denied != NGX_HTTP_DSS_BILL_S3_DENIED_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "error") == 0) {
        dlcf->s3.access_denied = NGX_HTTP_DSS_BILL_S3_DENIED_ERROR;

    } else if (ngx_strcmp(value[1].data, "missing") == 0) {
        dlcf->s3.access_denied = NGX_HTTP_DSS_BILL_S3_DENIED_MISSING;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be \"error\" or \"missing\", "
                           "not \"%V\"", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Inherits the settings and, in a bill location with an archive, checks
 * them together and hands the core its signing options. Runs before the
 * default health probe is derived: a signed archive is probed at its
 * bucket.
 */

static ngx_int_t
ngx_http_dss_bill_s3_check_headers(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *conf)
{
    u_char      *colon, *value, *end;
    size_t       name_len;
    ngx_str_t   *header;
    ngx_uint_t   i;
    const char  *why;

    if (conf->upstream_headers == NULL) {
        return NGX_OK;
    }

    header = conf->upstream_headers->elts;

    for (i = 0; i < conf->upstream_headers->nelts; i++) {
        end = header[i].data + header[i].len;
        colon = ngx_strlchr(header[i].data, end, ':');
        name_len = colon ? (size_t) (colon - header[i].data) : header[i].len;

        value = colon ? colon + 1 : end;
        while (value < end && (*value == ' ' || *value == '\t')) {
            value++;
        }

        why = NULL;

        if ((name_len == sizeof("Host") - 1
             && ngx_strncasecmp(header[i].data, (u_char *) "Host", name_len)
                == 0)
            || (name_len == sizeof("Authorization") - 1
                && ngx_strncasecmp(header[i].data,
                                   (u_char *) "Authorization", name_len)
                   == 0)
            || (name_len >= sizeof("x-amz-") - 1
                && ngx_strncasecmp(header[i].data, (u_char *) "x-amz-",
                                   sizeof("x-amz-") - 1)
                   == 0))
        {
            why = "is set by the signature";

        } else if (value == end) {
            why = "has an empty value, which libcurl does not send";
        }

        if (why) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"dss_bill_upstream_header %*s\" %s "
                          "(\"dss_bill_upstream_s3\") in location \"%V\" "
                          "in %s:%ui", name_len, header[i].data, why,
                          &conf->location, conf->file, conf->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


char *
ngx_http_dss_bill_s3_merge(ngx_conf_t *cf, ngx_http_dss_bill_loc_conf_t *prev,
    ngx_http_dss_bill_loc_conf_t *conf)
{
    char                          err[NGX_HTTP_DSS_BILL_REASON_LEN];
    size_t                        len;
    u_char                       *url;
    ngx_str_t                    *raw;
    ngx_http_dss_bill_s3_conf_t  *s3 = &conf->s3;

    if (s3->region.data == NULL) {
        s3->region = prev->s3.region;
        s3->service = prev->s3.service;
    }

    if (s3->credentials.data == NULL) {
        s3->credentials = prev->s3.credentials;
        s3->options.access_key_id = prev->s3.options.access_key_id;
        s3->options.secret_access_key = prev->s3.options.secret_access_key;
        s3->options.token_header = prev->s3.options.token_header;
    }

    if (s3->access_denied == NGX_HTTP_DSS_BILL_S3_DENIED_UNSET) {
        s3->access_denied = prev->s3.access_denied;
    }

    if (s3->access_denied == NGX_HTTP_DSS_BILL_S3_DENIED_UNSET) {
        s3->access_denied = NGX_HTTP_DSS_BILL_S3_DENIED_ERROR;
    }

    if (!conf->enabled || conf->upstream == NULL) {
        return NGX_CONF_OK;
    }

    if (s3->region.data == NULL) {
        if (s3->credentials.data) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"dss_bill_upstream_s3_credentials\" without "
                          "\"dss_bill_upstream_s3\" in location \"%V\" "
                          "in %s:%ui", &conf->location, conf->file,
                          conf->line);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (s3->credentials.data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_s3\" needs "
                      "\"dss_bill_upstream_s3_credentials\" in location "
                      "\"%V\" in %s:%ui", &conf->location, conf->file,
                      conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->upstream_basic_auth.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_s3\" and "
                      "\"dss_bill_upstream_basic_auth\" exclude each other "
                      "in location \"%V\" in %s:%ui", &conf->location,
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    /* headers the signature owns, or that libcurl would drop or repeat,
     * would make every signed request fail (SignatureDoesNotMatch) */

    if (ngx_http_dss_bill_s3_check_headers(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* a redirect would carry a signature made for another URL */

    if (conf->upstream_redirects > 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_s3\" signs each request for its "
                      "URL: \"dss_bill_upstream_redirects\" must be 0 "
                      "in location \"%V\" in %s:%ui", &conf->location,
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    raw = &conf->upstream->value;

    if (dss_bill_s3_url_check((const char *) raw->data, raw->len,
                              err, sizeof(err)) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream\" \"%V\" with "
                      "\"dss_bill_upstream_s3\": %s in %s:%ui", raw, err,
                      conf->upstream_file, conf->upstream_line);
        return NGX_CONF_ERROR;
    }

    s3->options.region = (const char *) s3->region.data;
    s3->options.service = (const char *) s3->service.data;
    s3->options.access_denied_is_missing =
        (s3->access_denied == NGX_HTTP_DSS_BILL_S3_DENIED_MISSING);
    conf->upstream_options.s3 = &s3->options;

    /* H3: by default, an empty listing of the bucket */

    if (conf->upstream_health_url.len == 0) {
        len = raw->len + sizeof("?max-keys=0");

        url = ngx_pnalloc(cf->pool, len);
        if (url == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->upstream_health_url.len =
            dss_bill_s3_probe_url((const char *) raw->data, raw->len,
                                  (char *) url, len);
        conf->upstream_health_url.data = url;

        if (conf->upstream_health_url.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the bucket in \"dss_bill_upstream\" cannot be "
                          "told (a variable, or no \"/bucket/key\" path): "
                          "set \"dss_bill_upstream_health_url\" (or \"off\") "
                          "for location \"%V\" in %s:%ui", &conf->location,
                          conf->upstream_file, conf->upstream_line);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* Reads the credentials file, refusing one that others may read. */

static ngx_int_t
ngx_http_dss_bill_s3_read(ngx_conf_t *cf, ngx_str_t *path, ngx_str_t *text)
{
    u_char           mode[5];
    ssize_t          n;
    ngx_int_t        rc;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *path;
    file.log = cf->log;

    /* non-blocking: a named pipe in its place must not hang nginx -t */
    file.fd = ngx_open_file(path->data, NGX_FILE_RDONLY|NGX_FILE_NONBLOCK,
                            NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", path);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", path);
        goto done;
    }

    if (!ngx_is_file(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials \"%V\" is not a regular file", path);
        goto done;
    }

    /* D9: a secret that other users can read is already out */

    if (fi.st_mode & (S_IRWXG | S_IRWXO)) {
        mode[0] = '0' + ((fi.st_mode >> 9) & 7);
        mode[1] = '0' + ((fi.st_mode >> 6) & 7);
        mode[2] = '0' + ((fi.st_mode >> 3) & 7);
        mode[3] = '0' + (fi.st_mode & 7);
        mode[4] = '\0';

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials \"%V\" may be read or changed by "
                           "others than its owner (mode %s): chmod 600 it",
                           path, mode);
        goto done;
    }

    if (ngx_file_size(&fi) > NGX_HTTP_DSS_BILL_S3_CREDENTIALS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials \"%V\" is larger than 64k", path);
        goto done;
    }

    text->len = (size_t) ngx_file_size(&fi);
    text->data = ngx_pnalloc(cf->pool, text->len + 1);
    if (text->data == NULL) {
        goto done;
    }

    n = ngx_read_file(&file, text->data, text->len, 0);

    if (n == NGX_ERROR || (size_t) n != text->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot read credentials \"%V\" (changing?)",
                           path);
        ngx_explicit_memzero(text->data, text->len);
        goto done;
    }

    rc = NGX_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", path);
    }

    return rc;
}


static u_char *
ngx_http_dss_bill_s3_copy(ngx_conf_t *cf, const char *prefix,
    dss_bill_text *value)
{
    u_char  *s, *p;
    size_t   len;

    len = ngx_strlen(prefix);

    s = ngx_pnalloc(cf->pool, len + value->len + 1);
    if (s == NULL) {
        return NULL;
    }

    p = ngx_cpymem(s, prefix, len);
    p = ngx_cpymem(p, value->data, value->len);
    *p = '\0';

    return s;
}
