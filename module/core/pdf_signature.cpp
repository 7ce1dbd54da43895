// PDF signature (contract D8): a 200 only ever carries a body that starts
// with "%PDF-".

#include "dss_bill.h"

#include <string_view>

extern "C" int dss_bill_is_pdf_signature(const unsigned char *head,
                                         size_t len) {
    constexpr std::string_view signature = "%PDF-";
    static_assert(signature.size() == DSS_BILL_PDF_SIGNATURE_LEN);

    if (len < signature.size()) {
        return 0;
    }
    return std::string_view(reinterpret_cast<const char *>(head),
                            signature.size()) == signature;
}
