// RETURN_IF_ERROR / ASSIGN_OR_RETURN for Debian's Abseil 20220623, which has
// neither. Defined once here; every module includes this header.
#ifndef GWMIRROR_COMMON_STATUS_MACROS_H_
#define GWMIRROR_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define GWM_CONCAT_INNER_(a, b) a##b
#define GWM_CONCAT_(a, b) GWM_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status gwm_status_ = (expr);       \
    if (!gwm_status_.ok()) return gwm_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(GWM_CONCAT_(gwm_statusor_, __LINE__), lhs, expr)

#endif  // GWMIRROR_COMMON_STATUS_MACROS_H_
