#include "hookrt/hooks.h"

#include <algorithm>

namespace hookrt {

bool HookOptions::fires_at(int64_t step) const {
  if (step < start) return false;
  if (end && step > *end) return false;
  return every <= 1 || (step - start) % every == 0;
}

bool glob_match(const std::string& pattern, const std::string& text) {
  // Iterative wildcard match with backtracking to the last '*': linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

// ---- HookHandle ----

HookHandle::HookHandle(HookHandle&& other) noexcept
    : registry_(std::move(other.registry_)), id_(other.id_), scoped_(other.scoped_) {
  other.id_ = 0;
  other.scoped_ = false;
}

HookHandle& HookHandle::operator=(HookHandle&& other) noexcept {
  if (this != &other) {
    if (scoped_) remove();
    registry_ = std::move(other.registry_);
    id_ = other.id_;
    scoped_ = other.scoped_;
    other.id_ = 0;
    other.scoped_ = false;
  }
  return *this;
}

HookHandle::~HookHandle() {
  if (scoped_) remove();
}

void HookHandle::remove() {
  if (auto registry = registry_.lock(); registry && id_ != 0) registry->remove(id_);
  id_ = 0;
}

// ---- HookRegistry ----

static size_t when_index(HookWhen when) { return static_cast<size_t>(when); }

uint64_t HookRegistry::add(Hook hook) {
  hook.id = next_id_++;
  auto& list = hooks_[when_index(hook.when)];
  auto shared = std::make_shared<const Hook>(std::move(hook));
  if (shared->options.prepend) {
    list.insert(list.begin(), std::move(shared));
  } else {
    list.push_back(std::move(shared));
  }
  return next_id_ - 1;
}

void HookRegistry::remove(uint64_t id) {
  for (auto& list : hooks_)
    std::erase_if(list, [id](const auto& hook) { return hook->id == id; });
}

void HookRegistry::clear() {
  for (auto& list : hooks_) list.clear();
}

std::vector<std::shared_ptr<const Hook>> HookRegistry::hooks_for(HookWhen when, const std::string& target) const {
  std::vector<std::shared_ptr<const Hook>> found;
  for (const auto& hook : hooks_[when_index(when)])
    if (std::find(hook->targets.begin(), hook->targets.end(), target) != hook->targets.end()) found.push_back(hook);
  return found;
}

const std::vector<std::shared_ptr<const Hook>>& HookRegistry::hooks(HookWhen when) const {
  return hooks_[when_index(when)];
}

bool HookRegistry::has_host_callbacks() const {
  for (const auto& list : hooks_)
    for (const auto& hook : list)
      if (!std::holds_alternative<ProbeList>(hook->action)) return true;
  return false;
}

bool HookRegistry::empty() const {
  return std::all_of(std::begin(hooks_), std::end(hooks_), [](const auto& list) { return list.empty(); });
}

}  // namespace hookrt
