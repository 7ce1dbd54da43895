// PDF checks (contract D8): a 200 only ever carries a body that starts with
// "%PDF-" and, unless a location relaxes it, has "%%EOF" within its last
// 1024 bytes, so a truncated body or one still being written is refused.

#include "dss_bill.h"

#include <algorithm>
#include <string_view>

namespace {

constexpr std::string_view kSignature = "%PDF-";
constexpr std::string_view kEndMarker = "%%EOF";
static_assert(kSignature.size() == DSS_BILL_PDF_SIGNATURE_LEN);

std::string_view view(const unsigned char *p, size_t len) {
    return {reinterpret_cast<const char *>(p), len};
}

} // namespace

extern "C" {

int dss_bill_is_pdf_signature(const unsigned char *head, size_t len) {
    return len >= kSignature.size() &&
           view(head, kSignature.size()) == kSignature;
}

long long dss_bill_pdf_tail_offset(long long size) {
    return std::max<long long>(0, size - DSS_BILL_PDF_TAIL_LEN);
}

dss_bill_outcome dss_bill_pdf_verdict(dss_bill_pdf_check check,
                                      long long size,
                                      const unsigned char *head,
                                      size_t head_len,
                                      const unsigned char *tail,
                                      size_t tail_len) {
    if (size <= 0) {
        return DSS_BILL_EMPTY;
    }
    if (!dss_bill_is_pdf_signature(head, std::min<long long>(head_len, size))) {
        return DSS_BILL_NOT_PDF;
    }
    if (check == DSS_BILL_PDF_CHECK_SIGNATURE) {
        return DSS_BILL_OK;
    }
    // a tail that is not the body's whole last part proves nothing
    if (static_cast<long long>(tail_len) !=
        size - dss_bill_pdf_tail_offset(size)) {
        return DSS_BILL_INCOMPLETE_PDF;
    }
    if (view(tail, tail_len).find(kEndMarker) == std::string_view::npos) {
        return DSS_BILL_INCOMPLETE_PDF;
    }
    return DSS_BILL_OK;
}

} // extern "C"
