// AWS Signature Version 4 for the GETs of an object-store archive, with
// OpenSSL's SHA-256: the signing key is derived once per day and options
// (SigningKeys), each request costs one SHA-256 and one HMAC.

#ifndef DSS_BILL_S3_SIGN_HPP
#define DSS_BILL_S3_SIGN_HPP

#include "dss_bill.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace dss_bill {

constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// The derived keys of the last few (options, day) pairs of a worker.
class SigningKeys {
  public:
    // The key for s3 on date ("YYYYMMDD"); false if OpenSSL failed.
    bool get(const dss_bill_s3_options &s3, std::string_view date,
             unsigned char key[32]);

  private:
    struct Entry {
        const dss_bill_s3_options *s3 = nullptr;
        char date[9] = {};
        unsigned char key[32] = {};
    };
    Entry entries_[8];
    size_t next_ = 0;
};

// What a signed GET of url (path already encoded the SigV4 way) sends:
// "Host: ...", "x-amz-content-sha256: ...", "x-amz-date: ..." (unless
// extra holds one, whose time is then used), the session token, and
// "Authorization: ..." as header lines in lines (appended, separated by
// '\0'), signing every extra "Name: value" line too. amz_date is
// "YYYYMMDDTHHMMSSZ". False if the URL has no host or OpenSSL failed.
bool s3_sign(const dss_bill_s3_options &s3, SigningKeys *keys,
             std::string_view url, std::string_view amz_date,
             const char *const *extra, std::string &lines);

} // namespace dss_bill

#endif
