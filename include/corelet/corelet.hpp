#pragma once
// <corelet/corelet.hpp> — the whole public API of corelet.
#include <corelet/core/stack.hpp>
#include <corelet/sched/barrier.hpp>
#include <corelet/sched/blocking.hpp>
#include <corelet/sched/channel.hpp>
#include <corelet/sched/condition_variable.hpp>
#include <corelet/sched/errors.hpp>
#include <corelet/sched/event.hpp>
#include <corelet/sched/generator.hpp>
#include <corelet/sched/local.hpp>
#include <corelet/sched/mutex.hpp>
#include <corelet/sched/queue.hpp>
#include <corelet/sched/semaphore.hpp>
#include <corelet/sched/task.hpp>
#include <corelet/sched/timer.hpp>
#include <corelet/sched/wait_group.hpp>
