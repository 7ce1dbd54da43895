// The outcome model: every way a download can end, its status under the
// contract, its log severity and its reason, side by side in one table.

#include "dss_bill.h"

#include <cerrno>
#include <iterator>

namespace {

struct OutcomeInfo {
    dss_bill_outcome outcome;
    int status;
    dss_bill_severity severity;
    const char *reason;
};

// clang-format off
constexpr OutcomeInfo kOutcomes[] = {
    // D3: the complete PDF
    {DSS_BILL_OK,               200, DSS_BILL_SEVERITY_NONE,      "bill sent"},
    // D5: no bill document for that id, including ids that cannot be valid
    {DSS_BILL_INVALID_ID,       404, DSS_BILL_SEVERITY_NOT_FOUND, "bill id rejected by the id rule"},
    {DSS_BILL_ABSENT,           404, DSS_BILL_SEVERITY_NOT_FOUND, "bill not found"},
    {DSS_BILL_NOT_REGULAR_FILE, 404, DSS_BILL_SEVERITY_ERROR,     "bill path is not a regular file"},
    {DSS_BILL_SYMLINK_REFUSED,  404, DSS_BILL_SEVERITY_ERROR,     "bill path is a symbolic link refused by disable_symlinks"},
    {DSS_BILL_UNSAFE_PATH,      404, DSS_BILL_SEVERITY_ERROR,     "dss_bill_path produced an unsafe relative path"},
    // D6: storage faults
    {DSS_BILL_UNREADABLE,       500, DSS_BILL_SEVERITY_ERROR,     "bill file is not readable by the worker"},
    {DSS_BILL_STORAGE_ERROR,    500, DSS_BILL_SEVERITY_CRIT,      "storage error while opening the bill"},
    {DSS_BILL_EMPTY,            500, DSS_BILL_SEVERITY_ERROR,     "bill is empty"},
    // D4: larger than dss_bill_max_size (5 MB by default)
    {DSS_BILL_TOO_LARGE,        500, DSS_BILL_SEVERITY_ERROR,     "bill exceeds dss_bill_max_size"},
    // D8: a 200 only for a body that starts with %PDF-
    {DSS_BILL_NOT_PDF,          500, DSS_BILL_SEVERITY_ERROR,     "bill is not a PDF (no %PDF- signature)"},
    // D8: ... and, unless dss_bill_pdf_check signature, ends like a PDF
    {DSS_BILL_INCOMPLETE_PDF,   500, DSS_BILL_SEVERITY_ERROR,     "bill is not a complete PDF (no %%EOF in its last 1024 bytes)"},
    // the archive source (dss_bill_upstream): D5 for its "no such bill",
    // D6 for everything else
    {DSS_BILL_UPSTREAM_NOT_FOUND, 404, DSS_BILL_SEVERITY_NOT_FOUND, "archive has no such bill"},
    {DSS_BILL_UPSTREAM_STATUS,    500, DSS_BILL_SEVERITY_ERROR,     "archive answered an error status"},
    {DSS_BILL_UPSTREAM_REDIRECT,  500, DSS_BILL_SEVERITY_ERROR,     "archive answered a redirect that is not followed"},
    {DSS_BILL_UPSTREAM_TIMEOUT,   500, DSS_BILL_SEVERITY_ERROR,     "archive timed out"},
    {DSS_BILL_UPSTREAM_CONNECT,   500, DSS_BILL_SEVERITY_ERROR,     "cannot connect to the archive"},
    {DSS_BILL_UPSTREAM_RESOLVE,   500, DSS_BILL_SEVERITY_ERROR,     "cannot resolve the archive's host"},
    {DSS_BILL_UPSTREAM_TLS,       500, DSS_BILL_SEVERITY_ERROR,     "TLS with the archive failed"},
    {DSS_BILL_UPSTREAM_TRUNCATED, 500, DSS_BILL_SEVERITY_ERROR,     "archive connection broke before the body was complete"},
    {DSS_BILL_UPSTREAM_FRAMING,   500, DSS_BILL_SEVERITY_ERROR,     "archive response framing is ambiguous"},
    {DSS_BILL_UPSTREAM_ERROR,     500, DSS_BILL_SEVERITY_ERROR,     "archive fetch failed"},
    {DSS_BILL_TEMP_FILE_ERROR,    500, DSS_BILL_SEVERITY_CRIT,      "cannot buffer the bill in a temporary file"},
    // last: what an unknown outcome maps to
    {DSS_BILL_INTERNAL_ERROR,   500, DSS_BILL_SEVERITY_CRIT,      "internal error"},
};
// clang-format on

const OutcomeInfo &info(dss_bill_outcome outcome) {
    for (const auto &entry : kOutcomes) {
        if (entry.outcome == outcome) {
            return entry;
        }
    }
    return kOutcomes[std::size(kOutcomes) - 1]; // unknown: internal error
}

} // namespace

extern "C" {

int dss_bill_outcome_status(dss_bill_outcome outcome) {
    return info(outcome).status;
}

const char *dss_bill_outcome_reason(dss_bill_outcome outcome) {
    return info(outcome).reason;
}

dss_bill_severity dss_bill_outcome_severity(dss_bill_outcome outcome) {
    return info(outcome).severity;
}

dss_bill_outcome dss_bill_outcome_from_open_errno(int err) {
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return DSS_BILL_ABSENT;
    case ELOOP:  // disable_symlinks on
    case EMLINK: // disable_symlinks if_not_owner (nginx reports EMLINK)
        return DSS_BILL_SYMLINK_REFUSED;
    case EACCES:
    case EPERM:
        return DSS_BILL_UNREADABLE;
    default:
        return DSS_BILL_STORAGE_ERROR;
    }
}

dss_bill_outcome dss_bill_check_file(int is_file, long long size,
                                     long long max_size) {
    if (!is_file) {
        return DSS_BILL_NOT_REGULAR_FILE;
    }
    if (size <= 0) {
        return DSS_BILL_EMPTY;
    }
    if (size > max_size) {
        return DSS_BILL_TOO_LARGE; // D4
    }
    return DSS_BILL_OK;
}

} // extern "C"
