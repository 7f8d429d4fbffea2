// Workspace (see workspace.h).
#include "workspace.h"

namespace hookrt::cuda {

void* Workspace::reserve(size_t bytes) {
  if (bytes == 0) return block_ ? block_->data : nullptr;
  if (!block_ || block_->bytes < bytes) {
    pool_.refuse_growth_while_recording(what_);
    block_.reset();  // the old block returns to the pool first, so it can serve the new one
    block_ = pool_.allocate_bytes(bytes);
  }
  return block_->data;
}

}  // namespace hookrt::cuda
