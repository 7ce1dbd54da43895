// SigV4 in the core, with OpenSSL. libcurl 7.88.1's CURLOPT_AWS_SIGV4 was
// correct once four gaps were filled, but cost 23 us of CPU per request
// (it derives the signing key with five HMACs through OpenSSL's implicit
// algorithm fetch on every request); here the key is derived once a day and
// the digest fetched once per process.

#include "s3_sign.hpp"

#include "ascii.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <utility>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using Digest = std::array<unsigned char, 32>;

const EVP_MD *sha256_md() {
    // fetched once: an implicit fetch per digest is what made libcurl's
    // signing slow under OpenSSL 3
    static EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

struct MdCtxDeleter {
    void operator()(EVP_MD_CTX *ctx) const { EVP_MD_CTX_free(ctx); }
};

EVP_MD_CTX *md_ctx() {
    // one per thread, kept: a worker signs one request at a time
    thread_local std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    return ctx.get();
}

bool sha256(std::initializer_list<std::string_view> parts, Digest &out) {
    EVP_MD_CTX *ctx = md_ctx();
    const EVP_MD *md = sha256_md();
    if (ctx == nullptr || md == nullptr ||
        EVP_DigestInit_ex(ctx, md, nullptr) != 1) {
        return false;
    }
    for (std::string_view p : parts) {
        if (EVP_DigestUpdate(ctx, p.data(), p.size()) != 1) {
            return false;
        }
    }
    unsigned int len = 0;
    return EVP_DigestFinal_ex(ctx, out.data(), &len) == 1 && len == 32;
}

std::string_view view(const Digest &d) {
    return std::string_view(reinterpret_cast<const char *>(d.data()),
                            d.size());
}

// HMAC-SHA256 (RFC 2104) over SHA-256: keys here are at most 64 bytes
// except "AWS4" + a secret, which is hashed first as the RFC says.
bool hmac(std::string_view key, std::string_view message, Digest &out) {
    unsigned char block[64] = {};
    Digest hashed;
    if (key.size() > sizeof(block)) {
        if (!sha256({key}, hashed)) {
            return false;
        }
        key = view(hashed);
    }
    std::memcpy(block, key.data(), key.size());
    unsigned char ipad[64], opad[64];
    for (size_t i = 0; i < sizeof(block); ++i) {
        ipad[i] = static_cast<unsigned char>(block[i] ^ 0x36);
        opad[i] = static_cast<unsigned char>(block[i] ^ 0x5c);
    }
    Digest inner;
    return sha256({std::string_view(reinterpret_cast<char *>(ipad), 64),
                   message},
                  inner) &&
           sha256({std::string_view(reinterpret_cast<char *>(opad), 64),
                   view(inner)},
                  out);
}

void append_hex(std::string &out, const Digest &d) {
    static constexpr char hex[] = "0123456789abcdef";
    for (unsigned char c : d) {
        out += hex[c >> 4];
        out += hex[c & 0x0f];
    }
}


struct Header {
    std::string name; // lower case
    std::string value;
};

// The headers of one signature. Kept per thread and reused, so that after
// the first requests signing allocates nothing (strings keep capacity).
struct Scratch {
    std::vector<Header> headers;
    size_t used = 0;
    std::string request, signed_names, scope, to_sign, query;
    std::vector<std::string_view> params;

    Header &add() {
        if (used == headers.size()) {
            headers.emplace_back();
        }
        Header &h = headers[used++];
        h.name.clear();
        h.value.clear();
        return h;
    }
};

// "Name: value" as SigV4 canonicalises it: name in lower case, value
// trimmed, inner runs of spaces as one.
void canonical(std::string_view line, Header &h) {
    size_t colon = line.find(':');
    std::string_view name = dss_bill::trim_blanks(line.substr(0, colon));
    std::string_view value =
        colon == line.npos ? std::string_view()
                           : dss_bill::trim_blanks(line.substr(colon + 1));
    for (char c : name) {
        h.name += dss_bill::ascii_lower(c);
    }
    bool space = false;
    for (char c : value) {
        if (c == ' ' || c == '\t') {
            space = true;
            continue;
        }
        if (space) {
            h.value += ' ';
            space = false;
        }
        h.value += c;
    }
}

} // namespace

namespace dss_bill {

bool SigningKeys::get(const dss_bill_s3_options &s3, std::string_view date,
                      unsigned char key[32]) {
    for (const Entry &e : entries_) {
        if (e.s3 == &s3 && date == e.date) {
            std::memcpy(key, e.key, 32);
            return true;
        }
    }
    // "AWS4" + secret, without a copy of the secret kept anywhere
    std::string secret = "AWS4";
    secret += s3.secret_access_key;
    Digest k, k2;
    bool ok = hmac(secret, date, k) && hmac(view(k), s3.region, k2) &&
              hmac(view(k2), s3.service, k) &&
              hmac(view(k), "aws4_request", k2);
    std::fill(secret.begin(), secret.end(), '\0');
    if (!ok || date.size() != 8) {
        return false;
    }
    Entry &e = entries_[next_];
    next_ = (next_ + 1) % (sizeof(entries_) / sizeof(entries_[0]));
    e.s3 = &s3;
    std::memcpy(e.date, date.data(), 8);
    e.date[8] = '\0';
    std::memcpy(e.key, k2.data(), 32);
    std::memcpy(key, k2.data(), 32);
    return true;
}

// SigV4's canonical query: the parameters sorted by name, then value, each
// "name=value" (an empty value keeps its "="). The URL's own order is what
// goes on the wire; S3 sorts the same way on its side.
void canonical_query(std::string_view query, Scratch &x) {
    x.params.clear();
    while (!query.empty()) {
        size_t amp = query.find('&');
        std::string_view param = query.substr(0, amp);
        if (!param.empty()) {
            x.params.push_back(param);
        }
        query = amp == query.npos ? std::string_view() : query.substr(amp + 1);
    }
    auto name_of = [](std::string_view p) { return p.substr(0, p.find('=')); };
    auto value_of = [](std::string_view p) {
        size_t eq = p.find('=');
        return eq == p.npos ? std::string_view() : p.substr(eq + 1);
    };
    std::sort(x.params.begin(), x.params.end(),
              [&](std::string_view a, std::string_view b) {
                  return name_of(a) != name_of(b) ? name_of(a) < name_of(b)
                                                  : value_of(a) < value_of(b);
              });
    x.query.clear();
    for (std::string_view p : x.params) {
        if (!x.query.empty()) {
            x.query.push_back('&');
        }
        x.query.append(name_of(p)).push_back('=');
        x.query.append(value_of(p));
    }
}

bool s3_sign(const dss_bill_s3_options &s3, SigningKeys *keys,
             std::string_view url, std::string_view amz_date,
             const char *const *extra, std::string &lines) {
    // the URL's parts: scheme://authority/path?query
    size_t start = url.find("://");
    if (start == url.npos) {
        return false;
    }
    start += 3;
    size_t end = url.find_first_of("/?#", start);
    std::string_view host = url.substr(start, end == url.npos
                                                  ? url.npos
                                                  : end - start);
    std::string_view rest = end == url.npos ? std::string_view()
                                            : url.substr(end);
    rest = rest.substr(0, rest.find('#'));
    size_t q = rest.find('?');
    std::string_view path = rest.substr(0, q);
    std::string_view query = q == rest.npos ? std::string_view()
                                            : rest.substr(q + 1);
    if (host.empty() || host.find('@') != host.npos) {
        return false;
    }
    if (path.empty()) {
        path = "/";
    }

    // the headers signed: host, the payload hash, the time, the token and
    // every configured header (as libcurl signed them), sorted by name
    thread_local Scratch scratch;
    Scratch &x = scratch;
    x.used = 0;
    Header *h = &x.add();
    h->name = "host";
    h->value = host;
    h = &x.add();
    h->name = "x-amz-content-sha256";
    h->value = kEmptyPayloadSha256;
    bool own_date = true;
    char fixed_date[17] = {};
    for (const char *const *e = extra; e && *e; ++e) {
        h = &x.add();
        canonical(*e, *h);
        if (h->name == "x-amz-date") { // a test's fixed time
            size_t n = h->value.copy(fixed_date, sizeof(fixed_date) - 1);
            amz_date = std::string_view(fixed_date, n);
            own_date = false;
        }
    }
    if (own_date) {
        h = &x.add();
        h->name = "x-amz-date";
        h->value = amz_date;
    }
    if (s3.token_header) {
        canonical(s3.token_header, x.add());
    }
    // by name, stable (a repeated name keeps its values' order); a few
    // headers: an insertion sort, swapping strings, allocates nothing
    std::vector<Header> &headers = x.headers;
    for (size_t i = 1; i < x.used; ++i) {
        for (size_t j = i; j > 0 && headers[j].name < headers[j - 1].name;
             --j) {
            std::swap(headers[j], headers[j - 1]);
        }
    }
    if (amz_date.size() != 16) {
        return false;
    }

    std::string &request = x.request;
    request.assign("GET\n");
    canonical_query(query, x);
    request.append(path).append("\n").append(x.query).append("\n");
    std::string &signed_names = x.signed_names;
    signed_names.clear();
    for (size_t i = 0; i < x.used; ++i) {
        // repeated names: one line, values joined by commas
        if (i > 0 && headers[i].name == headers[i - 1].name) {
            request.pop_back();
            request.append(",").append(headers[i].value).append("\n");
            continue;
        }
        request.append(headers[i].name).append(":")
            .append(headers[i].value).append("\n");
        if (!signed_names.empty()) {
            signed_names += ';';
        }
        signed_names += headers[i].name;
    }
    request.append("\n").append(signed_names).append("\n")
        .append(kEmptyPayloadSha256);

    std::string_view date = amz_date.substr(0, 8);
    std::string &scope = x.scope;
    scope.assign(date);
    scope.append("/").append(s3.region).append("/").append(s3.service)
        .append("/aws4_request");
    Digest hashed;
    if (!sha256({request}, hashed)) {
        return false;
    }
    std::string &to_sign = x.to_sign;
    to_sign.assign("AWS4-HMAC-SHA256\n");
    to_sign.append(amz_date).append("\n").append(scope).append("\n");
    append_hex(to_sign, hashed);

    unsigned char key[32];
    SigningKeys once;
    if (!(keys ? keys : &once)->get(s3, date, key)) {
        return false;
    }
    Digest signature;
    bool ok = hmac(std::string_view(reinterpret_cast<char *>(key), 32),
                   to_sign, signature);
    std::memset(key, 0, sizeof(key));
    if (!ok) {
        return false;
    }

    auto line = [&lines](std::string_view a, std::string_view b) {
        lines.append(a).append(b).push_back('\0');
    };
    line("Host: ", host);
    line("x-amz-content-sha256: ", kEmptyPayloadSha256);
    if (own_date) {
        line("x-amz-date: ", amz_date);
    }
    if (s3.token_header) {
        line(s3.token_header, "");
    }
    lines.append("Authorization: AWS4-HMAC-SHA256 Credential=")
        .append(s3.access_key_id).append("/").append(scope)
        .append(", SignedHeaders=").append(signed_names)
        .append(", Signature=");
    append_hex(lines, signature);
    lines.push_back('\0');
    return true;
}

} // namespace dss_bill

extern "C" {

size_t dss_bill_s3_authorization(const dss_bill_s3_options *s3,
                                 const char *url, const char *amz_date,
                                 const char *const *headers, char *out,
                                 size_t out_size) {
    try {
        std::string lines;
        if (!dss_bill::s3_sign(*s3, nullptr, url, amz_date, headers, lines)) {
            return 0;
        }
        // the last line is "Authorization: <value>"
        lines.pop_back();
        std::string_view all(lines);
        std::string_view value = all.substr(all.rfind('\0') + 1);
        value.remove_prefix(sizeof("Authorization: ") - 1);
        if (value.size() + 1 > out_size) {
            return 0;
        }
        std::memcpy(out, value.data(), value.size());
        out[value.size()] = '\0';
        return value.size();
    } catch (...) {
        return 0;
    }
}

} // extern "C"
