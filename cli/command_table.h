// gwmirror's command table (common/command_line.h).
#ifndef GWMIRROR_CLI_COMMAND_TABLE_H_
#define GWMIRROR_CLI_COMMAND_TABLE_H_

#include "common/command_line.h"

namespace gwmirror {

const ProgramSpec& GwmirrorSpec();

}  // namespace gwmirror

#endif  // GWMIRROR_CLI_COMMAND_TABLE_H_
