// The two user-error types every op throws. The binding maps ValueError and TypeError to the
// Python exceptions of the same name; messages name the op, the argument and the shapes.
#pragma once

#include <stdexcept>
#include <string>

namespace cnnfast {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

}  // namespace cnnfast
