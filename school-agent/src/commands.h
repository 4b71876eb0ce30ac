/* The school-agent's commands: each takes its own argv (argv[0] is the command name) and
 * returns a sysexits.h exit code. */
#ifndef SCHOOL_AGENT_COMMANDS_H
#define SCHOOL_AGENT_COMMANDS_H

int command_init(int argc, char **argv);
int command_validate(int argc, char **argv);
int command_submit(int argc, char **argv);
int command_import(int argc, char **argv);
int command_sync(int argc, char **argv);
int command_status(int argc, char **argv);
int command_due(int argc, char **argv);
int command_run(int argc, char **argv);
int command_requeue(int argc, char **argv);

#endif
