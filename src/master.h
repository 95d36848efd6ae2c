/*
 * master.h - the master process: binds, creates the shared segment and
 * the inboxes, forks and supervises the workers, reloads, stops.
 */
#ifndef CHATD_MASTER_H
#define CHATD_MASTER_H

#include "conf.h"

/* Run until stopped by SIGTERM/SIGINT; returns the exit status. */
int master_main(struct conf *conf, const char *conf_path, int debug);

#endif
