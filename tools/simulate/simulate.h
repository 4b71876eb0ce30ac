/* The simulator's commands: each takes its own argv (argv[0] is the command's name) and
 * returns a sysexits.h exit code. (Named sim_* beside the school-agent's command_*,
 * which are linked in too.) */
#ifndef SIMULATE_SIMULATE_H
#define SIMULATE_SIMULATE_H

int sim_counties(int argc, char **argv);
int sim_generate(int argc, char **argv);
int sim_run(int argc, char **argv);

#endif
