#pragma once
// hookrt — everything public in one include.
#include "hookrt/backend.h"
#include "hookrt/devices.h"
#include "hookrt/error.h"
#include "hookrt/executor.h"
#include "hookrt/hook_spec.h"
#include "hookrt/hooks.h"
#include "hookrt/io.h"
#include "hookrt/model.h"
#include "hookrt/probes.h"
#include "hookrt/records.h"
#include "hookrt/tensor.h"
