
/*
 * The archive source's configuration: defaults that keep DSS's time budget,
 * the checks that need the whole location, and the libcurl options derived
 * once, here, instead of per request.
 */


#include "ngx_http_dss_bill.h"


static void ngx_http_dss_bill_merge_tls_file(
    ngx_http_dss_bill_tls_file_t *conf, ngx_http_dss_bill_tls_file_t *prev);


char *
ngx_http_dss_bill_upstream_merge(ngx_conf_t *cf,
    ngx_http_dss_bill_loc_conf_t *prev, ngx_http_dss_bill_loc_conf_t *conf)
{
    char                            err[NGX_HTTP_DSS_BILL_REASON_LEN];
    u_char                         *base;
    size_t                          len;
    ngx_str_t                      *header, raw;
    ngx_uint_t                      i;
    ngx_http_dss_bill_tls_file_t   *cert, *key;
    const char                    **lines;
    dss_bill_upstream_options      *o;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_dss_bill_main_conf_t  *dmcf;

    if (conf->upstream == NULL) {
        conf->upstream = prev->upstream;
        conf->upstream_file = prev->upstream_file;
        conf->upstream_line = prev->upstream_line;
    }

    /* T4: DSS waits 5 s for the response to start, and the response starts
     * only once the whole bill is fetched */

    ngx_conf_merge_msec_value(conf->upstream_connect_timeout,
                              prev->upstream_connect_timeout, 2000);
    ngx_conf_merge_msec_value(conf->upstream_timeout,
                              prev->upstream_timeout, 4000);
    ngx_conf_merge_size_value(conf->upstream_buffer_size,
                              prev->upstream_buffer_size, 16 * 1024);
    ngx_conf_merge_value(conf->upstream_redirects, prev->upstream_redirects,
                         0);
    ngx_conf_merge_value(conf->upstream_ssl_verify, prev->upstream_ssl_verify,
                         1);

    /* D9: like proxy_pass, a new connection per fetch unless asked for */
    ngx_conf_merge_value(conf->upstream_keepalive, prev->upstream_keepalive,
                         0);
    ngx_http_dss_bill_merge_tls_file(&conf->upstream_ssl_trusted_certificate,
                                     &prev->upstream_ssl_trusted_certificate);
    ngx_http_dss_bill_merge_tls_file(&conf->upstream_ssl_certificate,
                                     &prev->upstream_ssl_certificate);
    ngx_http_dss_bill_merge_tls_file(&conf->upstream_ssl_certificate_key,
                                     &prev->upstream_ssl_certificate_key);
    ngx_conf_merge_str_value(conf->upstream_basic_auth,
                             prev->upstream_basic_auth, "");
    ngx_conf_merge_str_value(conf->upstream_temp_path,
                             prev->upstream_temp_path, "");
    ngx_conf_merge_str_value(conf->upstream_health_url,
                             prev->upstream_health_url, "");

    if (conf->upstream_headers == NULL) {
        conf->upstream_headers = prev->upstream_headers;
    }

    if (ngx_http_dss_bill_s3_merge(cf, prev, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!conf->enabled || conf->upstream == NULL) {
        return NGX_CONF_OK;
    }

    /* cf points past the http block here: messages name their place */

    if (conf->upstream_connect_timeout > conf->upstream_timeout) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_connect_timeout\" exceeds "
                      "\"dss_bill_upstream_timeout\" in location \"%V\" "
                      "in %s:%ui", &conf->location, conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    cert = &conf->upstream_ssl_certificate;
    key = &conf->upstream_ssl_certificate_key;

    if ((cert->pem.data == NULL) != (key->pem.data == NULL)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_ssl_certificate\" and "
                      "\"dss_bill_upstream_ssl_certificate_key\" go together "
                      "in location \"%V\" in %s:%ui", &conf->location,
                      conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (cert->pem.data
        && dss_bill_tls_check_pair(cert->pem.data, cert->pem.len,
                                   key->pem.data, key->pem.len,
                                   err, sizeof(err))
           != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dss_bill_upstream_ssl_certificate_key\" \"%V\": %s "
                      "\"%V\" in %s:%ui", &key->path, err, &cert->path,
                      key->conf_file, key->conf_line);
        return NGX_CONF_ERROR;
    }

    o = &conf->upstream_options;

    o->connect_timeout_ms = conf->upstream_connect_timeout;
    o->timeout_ms = conf->upstream_timeout;
    o->max_size = conf->max_size;
    o->buffer_size = conf->upstream_buffer_size;
    o->ssl_verify = conf->upstream_ssl_verify;
    o->max_redirects = conf->upstream_redirects;
    o->keepalive = conf->upstream_keepalive;
    o->pdf_check = (dss_bill_pdf_check) conf->pdf_check;
    o->basic_auth = conf->upstream_basic_auth.len
                    ? (const char *) conf->upstream_basic_auth.data : NULL;

    o->ssl_trusted_certificate = conf->upstream_ssl_trusted_certificate.pem;
    o->ssl_certificate = cert->pem;
    o->ssl_certificate_key = key->pem;

    /* a body larger than the buffer spills next to nginx's own temp files */

    if (conf->upstream_temp_path.len) {
        if (ngx_conf_full_name(cf->cycle, &conf->upstream_temp_path, 0)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        o->temp_dir = (const char *) conf->upstream_temp_path.data;

    } else {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        o->temp_dir = (const char *) clcf->client_body_temp_path->name.data;
    }

    /* the request headers, as a NULL-terminated array of C strings */

    if (conf->upstream_headers) {
        lines = ngx_palloc(cf->pool,
                           (conf->upstream_headers->nelts + 1) * sizeof(char *));
        if (lines == NULL) {
            return NGX_CONF_ERROR;
        }

        header = conf->upstream_headers->elts;

        for (i = 0; i < conf->upstream_headers->nelts; i++) {
            lines[i] = (const char *) header[i].data;
        }

        lines[i] = NULL;
        o->headers = lines;
    }

    /* H3: the archive's probe, by default its base URL */

    raw = conf->upstream->value;

    if (conf->upstream_health_url.len == 0) {
        len = raw.len + 2;

        base = ngx_pnalloc(cf->pool, len);
        if (base == NULL) {
            return NGX_CONF_ERROR;
        }

        conf->upstream_health_url.len =
            dss_bill_upstream_url_base((const char *) raw.data, raw.len,
                                       (char *) base, len);
        conf->upstream_health_url.data = base;

        if (conf->upstream_health_url.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the archive's host in \"dss_bill_upstream\" holds "
                          "variables: set \"dss_bill_upstream_health_url\" "
                          "(or \"off\") for location \"%V\" in %s:%ui",
                          &conf->location, conf->upstream_file,
                          conf->upstream_line);
            return NGX_CONF_ERROR;
        }
    }

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_dss_bill_module);
    dmcf->uses_curl = 1;

    return NGX_CONF_OK;
}


static void
ngx_http_dss_bill_merge_tls_file(ngx_http_dss_bill_tls_file_t *conf,
    ngx_http_dss_bill_tls_file_t *prev)
{
    if (conf->path.data == NULL) {
        *conf = *prev;
    }
}
