// S3's error bodies: a small XML document whose <Code> and <Message> say
// what went wrong (SignatureDoesNotMatch, RequestTimeTooSkewed, ...). Only
// those two elements are read, from a bounded prefix of the body, for the
// error log; nothing here is a general XML parser.

#include "dss_bill.h"

#include <string_view>

namespace {

// S3 error documents are well under a kilobyte; a longer prefix is not
// looked at (the caller keeps at most this much anyway).
constexpr size_t kMaxLook = 4096;

// The text between <name> and </name>, if both are there and the text holds
// no markup (a nested element or a CDATA section is not an S3 error).
bool element_text(std::string_view body, std::string_view name,
                  std::string_view &text) {
    char open[16];
    char close[17];
    if (name.size() + 3 > sizeof(open)) {
        return false;
    }
    size_t n = 0;
    open[n++] = '<';
    for (char c : name) {
        open[n++] = c;
    }
    open[n++] = '>';
    std::string_view open_tag(open, n);
    n = 0;
    close[n++] = '<';
    close[n++] = '/';
    for (char c : name) {
        close[n++] = c;
    }
    close[n++] = '>';
    std::string_view close_tag(close, n);

    size_t start = body.find(open_tag);
    if (start == body.npos) {
        return false;
    }
    start += open_tag.size();
    size_t end = body.find(close_tag, start);
    if (end == body.npos) {
        return false;
    }
    text = body.substr(start, end - start);
    return text.find('<') == text.npos;
}

// Copies text for a log line: printable ASCII only, a few entities
// decoded, truncated to the buffer.
void copy_for_log(std::string_view text, char *out, size_t out_size) {
    if (out_size == 0) {
        return;
    }
    static constexpr struct {
        std::string_view entity;
        char c;
    } entities[] = {{"&lt;", '<'},   {"&gt;", '>'},   {"&amp;", '&'},
                    {"&quot;", '"'}, {"&apos;", '\''}};
    size_t used = 0;
    for (size_t i = 0; i < text.size() && used + 1 < out_size;) {
        char c = text[i];
        size_t step = 1;
        if (c == '&') {
            for (const auto &e : entities) {
                if (text.substr(i, e.entity.size()) == e.entity) {
                    c = e.c;
                    step = e.entity.size();
                    break;
                }
            }
        }
        out[used++] = (c >= ' ' && c <= '~') ? c : '?';
        i += step;
    }
    out[used] = '\0';
}

} // namespace

extern "C" {

int dss_bill_s3_error_parse(const char *body, size_t len, char *code,
                            size_t code_size, char *message,
                            size_t message_size) {
    if (code_size > 0) {
        code[0] = '\0';
    }
    if (message_size > 0) {
        message[0] = '\0';
    }
    if (body == nullptr) {
        return 0;
    }
    std::string_view doc(body, len < kMaxLook ? len : kMaxLook);
    // the elements of <Error>: a <Code> elsewhere is not S3's answer
    size_t at = doc.find("<Error>");
    if (at == doc.npos) {
        return 0;
    }
    doc = doc.substr(at);
    std::string_view text;
    if (!element_text(doc, "Code", text) || text.empty()) {
        return 0;
    }
    copy_for_log(text, code, code_size);
    if (element_text(doc, "Message", text)) {
        copy_for_log(text, message, message_size);
    }
    return 1;
}

} // extern "C"
