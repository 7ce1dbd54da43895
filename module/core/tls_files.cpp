// The archive's TLS files (dss_bill_upstream_ssl_*), checked when nginx
// reads its configuration so that `nginx -t` names a missing or malformed
// file, a key that does not match its certificate, or an encrypted key.
// The glue then hands libcurl the PEM text from memory: workers need no
// access to the files, as with nginx's own proxy_ssl_* files.

#include "dss_bill.h"
#include "error_text.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <memory>

namespace {

struct BioDeleter {
    void operator()(BIO *bio) const { BIO_free(bio); }
};
struct X509Deleter {
    void operator()(X509 *x509) const { X509_free(x509); }
};
struct KeyDeleter {
    void operator()(EVP_PKEY *key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Certificate = std::unique_ptr<X509, X509Deleter>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyDeleter>;

// Refuses to ask for a passphrase: nginx reads its configuration unattended.
int no_passphrase(char *, int, int, void *) {
    return -1;
}

Bio memory(const unsigned char *pem, size_t len) {
    if (len > static_cast<size_t>(INT_MAX)) {
        return nullptr;
    }
    return Bio(BIO_new_mem_buf(pem, static_cast<int>(len)));
}

Certificate first_certificate(const unsigned char *pem, size_t len) {
    Bio bio = memory(pem, len);
    return Certificate(bio ? PEM_read_bio_X509(bio.get(), nullptr,
                                               no_passphrase, nullptr)
                           : nullptr);
}

PrivateKey private_key(const unsigned char *pem, size_t len) {
    Bio bio = memory(pem, len);
    return PrivateKey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                                    no_passphrase, nullptr)
                          : nullptr);
}

// OpenSSL's reason for the last failure, and an empty error queue: what is
// left there would surface later on an unrelated TLS connection.
const char *openssl_reason(char *buf, size_t size) {
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : nullptr;
    snprintf(buf, size, "%s", reason ? reason : "no PEM data");
    ERR_clear_error();
    return buf;
}

} // namespace

extern "C" {

int dss_bill_tls_check(dss_bill_tls_kind kind, const unsigned char *pem,
                       size_t len, char *err, size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    char reason[128];

    if (kind == DSS_BILL_TLS_PRIVATE_KEY) {
        if (!private_key(pem, len)) {
            return error.set("no unencrypted private key in PEM format (",
                             openssl_reason(reason, sizeof(reason)), ")");
        }
    } else if (!first_certificate(pem, len)) {
        return error.set("no certificate in PEM format (",
                         openssl_reason(reason, sizeof(reason)), ")");
    }
    ERR_clear_error();
    return 0;
}

int dss_bill_tls_check_pair(const unsigned char *cert, size_t cert_len,
                            const unsigned char *key, size_t key_len,
                            char *err, size_t err_size) {
    dss_bill::ErrorText error(err, err_size);
    Certificate certificate = first_certificate(cert, cert_len);
    PrivateKey private_key_ = private_key(key, key_len);

    int matches = certificate && private_key_ &&
                  X509_check_private_key(certificate.get(),
                                         private_key_.get()) == 1;
    ERR_clear_error();
    if (!matches) {
        return error.set("the private key does not match the certificate");
    }
    return 0;
}

} // extern "C"
