#pragma once

// Errors that tell the caller what to do with them, in the style of librdkafka's
// retriable/fatal classification: the code names the reason (it becomes a metrics label),
// the action says whether to retry, drop (and count) or stop.

#include <boost/outcome/basic_result.hpp>
#include <boost/outcome/policy/terminate.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace tern::shared {

enum class ErrorAction {
    Retry,  // transient: the same operation may succeed later
    Drop,   // this input is bad: count it, keep it aside if policy says so, carry on
    Stop,   // the process cannot continue as configured
};

struct Error {
    // A short, stable snake_case reason ("truncated", "non_finite_value"); safe as a label value.
    std::string code;
    ErrorAction action = ErrorAction::Drop;
    // Human-readable detail for logs and API responses; never contains secrets or payload bytes.
    std::string detail;

    static Error drop(std::string code, std::string detail = {}) {
        return Error{std::move(code), ErrorAction::Drop, std::move(detail)};
    }
    static Error retry(std::string code, std::string detail = {}) {
        return Error{std::move(code), ErrorAction::Retry, std::move(detail)};
    }
    static Error stop(std::string code, std::string detail = {}) {
        return Error{std::move(code), ErrorAction::Stop, std::move(detail)};
    }

    // "code: detail", or just the code.
    std::string message() const { return detail.empty() ? code : code + ": " + detail; }
};

// Result<T> holds a T or an Error. value() on an error terminates: callers check first.
template <class T>
using Result = boost::outcome_v2::basic_result<T, Error, boost::outcome_v2::policy::terminate>;

using VoidResult = Result<void>;

inline auto success() { return boost::outcome_v2::success(); }
template <class T>
auto success(T&& value) {
    return boost::outcome_v2::success(std::forward<T>(value));
}

}  // namespace tern::shared
