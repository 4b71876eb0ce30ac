/* The school-agent's commands: each takes its own argv (argv[0] is the command name) and
 * returns a sysexits.h exit code. */
#ifndef SCHOOL_AGENT_COMMANDS_H
#define SCHOOL_AGENT_COMMANDS_H

int command_validate(int argc, char **argv);

#endif
