#pragma once
// Strong ids: an offset is not a partition is not a node id, and the compiler
// says so. Each wraps its Kafka wire type.
#include <compare>
#include <cstdint>
#include <functional>

#include <fmt/format.h>

namespace gregor {

template <class Tag, class Rep>
struct strong_id {
  Rep value{};
  constexpr strong_id() = default;
  constexpr explicit strong_id(Rep v) : value(v) {}
  constexpr auto operator<=>(const strong_id&) const = default;
};

using node_id = strong_id<struct node_id_tag, int32_t>;
using partition_id = strong_id<struct partition_id_tag, int32_t>;
using leader_epoch = strong_id<struct leader_epoch_tag, int32_t>;

}  // namespace gregor

template <class Tag, class Rep>
struct std::hash<gregor::strong_id<Tag, Rep>> {
  size_t operator()(const gregor::strong_id<Tag, Rep>& id) const noexcept { return std::hash<Rep>{}(id.value); }
};

template <class Tag, class Rep>
struct fmt::formatter<gregor::strong_id<Tag, Rep>> : fmt::formatter<Rep> {
  auto format(const gregor::strong_id<Tag, Rep>& id, fmt::format_context& ctx) const {
    return fmt::formatter<Rep>::format(id.value, ctx);
  }
};
