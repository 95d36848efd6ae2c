/*
 * chatctl.h - what the parts of chatctl share.
 */
#ifndef CHATD_CHATCTL_H
#define CHATD_CHATCTL_H

/* chatd.conf to read the database settings from (-c). */
extern const char *ctl_db_conf;
/* chatctl db status | init | migrate (ctl_db.c). */
int ctl_db(int argc, char **argv);

#endif
