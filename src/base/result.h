#pragma once
// result<T>: the value of an operation that can fail for a reason the caller
// should handle (a bad file, a malformed frame). Bugs are assertions, not errors.
#include <string>
#include <utility>
#include <variant>

#include "base/assert.h"

namespace gregor {

struct error {
  std::string message;
};

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  result(error e) : v_(std::move(e)) {}                // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    GREGOR_ASSERT(ok(), "result::value() on an error: {}", std::get<1>(v_).message);
    return std::get<0>(v_);
  }
  T&& value() && {
    GREGOR_ASSERT(ok(), "result::value() on an error: {}", std::get<1>(v_).message);
    return std::get<0>(std::move(v_));
  }
  const T& value() const& {
    GREGOR_ASSERT(ok(), "result::value() on an error: {}", std::get<1>(v_).message);
    return std::get<0>(v_);
  }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }
  const error& err() const {
    GREGOR_ASSERT(!ok(), "result::err() on a value");
    return std::get<1>(v_);
  }

 private:
  std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(error e) : err_(std::move(e)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const error& err() const { return err_; }

 private:
  error err_;
  bool failed_ = false;
};

inline result<void> ok() { return {}; }

}  // namespace gregor
