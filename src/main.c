/*
 * main.c - chatd's command line: -c FILE, -t, -d, -h.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf.h"
#include "jarena.h"
#include "log.h"
#include "master.h"

#define CHATD_DEFAULT_CONF SYSCONFDIR "/chatd/chatd.conf"

static void __attribute__((noreturn))
usage(void)
{
	(void)fprintf(stderr, "usage: chatd [-dt] [-c file]\n");
	exit(1);
}

int
main(int argc, char *argv[])
{
	static struct conf conf;
	const char *path = CHATD_DEFAULT_CONF;
	char err[512];
	int ch, test = 0, debug = 0;

	while ((ch = getopt(argc, argv, "c:dth")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 't':
			test = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("chatd", LOG_LEVEL_INFO);
	jarena_install();
	conf_defaults(&conf);
	if (conf_load(&conf, path, err, sizeof(err)) == -1) {
		if (test) {
			(void)fprintf(stderr, "chatd: %s\n", err);
			return 1;
		}
		fatalx("%s", err);
	}
	if (test) {
		(void)fprintf(stderr, "chatd: configuration file %s: "
		    "configuration OK\n", path);
		return 0;
	}
	log_setlevel(debug ? LOG_LEVEL_DEBUG :
	    log_level_parse(conf.log_level));
	return master_main(&conf, path, debug);
}
