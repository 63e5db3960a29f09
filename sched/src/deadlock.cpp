// The deadlock report: what every tasklet still alive waits on, when nothing
// can wake any of them.

#include "scheduler.hpp"

#include <sstream>
#include <vector>

namespace corelet::detail {

std::string Scheduler::describe_wait(const Tasklet* t) {
  if (t->wait_what == kJoinWhat) {
    auto* target = static_cast<const Tasklet*>(t->wait_obj);
    std::ostringstream os;
    os << "Task::join of tasklet \"" << target->name << "\" (#" << target->running.id << ")";
    return os.str();
  }
  std::ostringstream os;
  os << t->wait_what;
  if (t->wait_obj) os << " " << t->wait_obj;
  return os.str();
}

std::string Scheduler::describe_blocked() const {
  // all_ is newest first; report oldest first, as spawned.
  std::vector<const Tasklet*> list;
  for (Tasklet* t = all_; t; t = t->all_next) list.push_back(t);
  std::ostringstream os;
  os << "corelet: deadlock: " << list.size() << (list.size() == 1 ? " tasklet is" : " tasklets are")
     << " blocked forever and nothing else can wake them:";
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    const Tasklet* t = *it;
    os << "\n  tasklet \"" << t->name << "\" (#" << t->running.id << ") ";
    if (t->state != State::Parked || !t->wait_what) {
      os << "is not started";
    } else {
      os << "waits on " << describe_wait(t);
    }
  }
  return os.str();
}

}  // namespace corelet::detail
