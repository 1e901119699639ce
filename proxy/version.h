/*
 * version — the program and library versions printed by `ringleader -V`.
 */
#ifndef RL_VERSION_H
#define RL_VERSION_H

#include <stdio.h>

void version_print(FILE *out);

#endif
