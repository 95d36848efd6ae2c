/*
 * chat_tty.c - the terminal of chat(1): libedit's readline interface in
 * callback mode, so a single poll loop serves the keyboard and the
 * server; plain line reading when stdin or stdout is not a terminal.
 *
 * Printing while a line is being edited: libedit has the prompt and the
 * partial line on screen and believes the cursor is where it left it.
 * Text is printed by moving to the first row of the edit area (the line
 * may have wrapped), erasing to the end of the screen, writing the text,
 * and asking libedit to draw the prompt and the line again from scratch
 * (rl_forced_update_display): libedit keeps the line's contents and
 * cursor position itself, so what was typed is never lost.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <sys/ioctl.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include <editline/readline.h>

#include "chat_tty.h"

#define CHAT_TTY_HISTORY	500	/* lines kept in the history */
#define CHAT_TTY_PROMPT_MAX	256	/* bytes of a prompt */
#define CHAT_TTY_READ_CHUNK	4096	/* bytes asked of one read() */
#define CHAT_TTY_LINE_MAX	(1024 * 1024) /* a longer input line is
					 * cut (without editing) */
#define CHAT_TTY_COLS		80	/* when the width is unknown */

static struct {
	int		 editing;	/* libedit owns the terminal */
	int		 active;	/* libedit reads in callback mode and
					 * shows the prompt and the line */
	int		 in_line;	/* inside the line function */
	int		 stop;		/* the line function returned -1 */
	int		 eof;
	int		 ansi;		/* the terminal takes ANSI cursor
					 * movement (not "dumb") */
	chat_tty_line_fn *fn;
	void		*arg;
	char		 prompt[CHAT_TTY_PROMPT_MAX];
	/* Without editing: input read but not yet a whole line. */
	char		*buf;
	size_t		 len, cap;
} tty;

static void	chat_tty_online(char *);
static int	chat_tty_deliver(char *);

void
chat_tty_init(int editing, chat_tty_line_fn *fn, void *arg)
{
	const char *term = getenv("TERM");

	memset(&tty, 0, sizeof(tty));
	tty.editing = editing;
	tty.fn = fn;
	tty.arg = arg;
	tty.ansi = term != NULL && *term != '\0' && strcmp(term, "dumb") != 0;
	if (!editing)
		return;
	/* chat handles its signals itself (see chat.c); libedit must not
	 * install handlers of its own around each read. */
	rl_catch_signals = 0;
	rl_catch_sigwinch = 0;
	rl_readline_name = "chat";
	rl_instream = stdin;
	rl_outstream = stdout;
	using_history();
	stifle_history(CHAT_TTY_HISTORY);
}

void
chat_tty_close(void)
{
	if (tty.editing && tty.active) {
		/* Leave the shell's prompt on a line of its own. */
		(void)fputs("\n", stdout);
		rl_callback_handler_remove();
		tty.active = 0;
	}
	(void)fflush(stdout);
	free(tty.buf);
	tty.buf = NULL;
	tty.len = tty.cap = 0;
}

/*
 * Start (again) reading a line in callback mode: libedit resets the
 * line, puts the terminal in its mode and prints the prompt.  Needed
 * after every finished line too, since libedit then leaves callback
 * mode (its next read would otherwise wait for a whole line).
 */
static void
chat_tty_activate(void)
{
	(void)fflush(stdout);
	rl_callback_handler_install(tty.prompt, chat_tty_online);
	tty.active = 1;
	(void)fflush(stdout);
}

/* Display width of the first n bytes of s (bytes when not decodable). */
static size_t
chat_tty_width(const char *s, size_t n)
{
	mbstate_t st;
	size_t w = 0, k;
	wchar_t wc;
	int cw;

	memset(&st, 0, sizeof(st));
	while (n > 0) {
		k = mbrtowc(&wc, s, n, &st);
		if (k == (size_t)-1 || k == (size_t)-2) {
			memset(&st, 0, sizeof(st));
			w++;
			s++;
			n--;
			continue;
		}
		if (k == 0)
			break;
		cw = wcwidth(wc);
		w += cw > 0 ? (size_t)cw : 0;
		s += k;
		n -= k;
	}
	return w;
}

static int
chat_tty_cols(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return CHAT_TTY_COLS;
}

/* Is libedit showing the prompt and a line being edited right now? */
static int
chat_tty_showing(void)
{
	return tty.editing && tty.active && !tty.in_line;
}

/* Erase the prompt and the line being edited; the cursor ends at the
 * start of the edit area's first row. */
static void
chat_tty_erase(void)
{
	size_t point, w;
	int up;

	if (!tty.ansi) {
		(void)fputs("\n", stdout);
		return;
	}
	point = 0;
	if (rl_line_buffer != NULL && rl_point > 0) {
		point = strnlen(rl_line_buffer, (size_t)rl_point);
	}
	w = chat_tty_width(tty.prompt, strlen(tty.prompt)) +
	    (rl_line_buffer != NULL ? chat_tty_width(rl_line_buffer, point) :
	    0);
	up = (int)(w / (size_t)chat_tty_cols());
	(void)fputs("\r", stdout);
	if (up > 0)
		(void)printf("\033[%dA", up);
	(void)fputs("\033[J", stdout);
}

static void
chat_tty_redraw(void)
{
	(void)fflush(stdout);
	rl_forced_update_display();
	(void)fflush(stdout);
}

void
chat_tty_set_prompt(const char *prompt)
{
	int showing;

	if (!tty.editing)
		return;
	showing = chat_tty_showing();
	if (showing)
		chat_tty_erase();
	(void)snprintf(tty.prompt, sizeof(tty.prompt), "%s", prompt);
	(void)rl_set_prompt(tty.prompt);
	if (showing)
		chat_tty_redraw();
	else if (!tty.active && !tty.in_line)
		chat_tty_activate();
	/* Inside the line function, the prompt shows when it returns. */
}

void
chat_tty_print(const char *text)
{
	int showing = chat_tty_showing();

	if (showing)
		chat_tty_erase();
	(void)fputs(text, stdout);
	(void)fputs("\n", stdout);
	if (showing)
		chat_tty_redraw();
	else
		(void)fflush(stdout);
}

void
chat_tty_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		chat_tty_print("(out of memory)");
		return;
	}
	chat_tty_print(s);
	free(s);
}

void
chat_tty_history(const char *line)
{
	if (tty.editing && line != NULL && *line != '\0')
		(void)add_history(line);
}

/* libedit's line callback: the line is ours to free.  libedit has left
 * callback mode and restored the terminal's own mode, so the line
 * function prints plainly and may read a password. */
static void
chat_tty_online(char *line)
{
	tty.active = 0;
	if (line == NULL) {
		tty.eof = 1;
		(void)fputs("\n", stdout);	/* after libedit's "^D" */
	}
	(void)chat_tty_deliver(line);
	free(line);
}

/* Without editing: the next whole line from tty.buf, NUL-terminated in
 * place, or NULL; *used says how many bytes to drop after it. */
static char *
chat_tty_take(size_t *used)
{
	char *nl;

	if (tty.len == 0 || (nl = memchr(tty.buf, '\n', tty.len)) == NULL)
		return NULL;
	*nl = '\0';
	if (nl > tty.buf && nl[-1] == '\r')
		nl[-1] = '\0';
	*used = (size_t)(nl - tty.buf) + 1;
	return tty.buf;
}

static void
chat_tty_drop(size_t used)
{
	memmove(tty.buf, tty.buf + used, tty.len - used);
	tty.len -= used;
}

/* Read once from fd 0 into tty.buf: 1 bytes came, 0 end of input,
 * -1 error. */
static int
chat_tty_fill(void)
{
	size_t ncap;
	ssize_t n;
	char *nb;

	/* Room for a chunk and the NUL a last unterminated line gets. */
	if (tty.cap - tty.len < CHAT_TTY_READ_CHUNK + 1) {
		ncap = tty.cap == 0 ? CHAT_TTY_READ_CHUNK * 2 : tty.cap * 2;
		if ((nb = realloc(tty.buf, ncap)) == NULL)
			return -1;
		tty.buf = nb;
		tty.cap = ncap;
	}
	do
		n = read(STDIN_FILENO, tty.buf + tty.len,
		    tty.cap - tty.len - 1);
	while (n == -1 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	tty.len += (size_t)n;
	/* A line without end is cut, so memory stays bounded. */
	if (tty.len >= CHAT_TTY_LINE_MAX &&
	    memchr(tty.buf, '\n', tty.len) == NULL)
		tty.buf[tty.len - 1] = '\n';
	return 1;
}

/* Without editing: the rest of the input, unterminated, as the last
 * line (NUL-terminated in place), or NULL when there is none. */
static char *
chat_tty_rest(void)
{
	if (tty.len == 0)
		return NULL;
	tty.buf[tty.len] = '\0';
	tty.len = 0;
	return tty.buf;
}

/* Call the line function with line (NULL: end of input); 0, or -1 when
 * it asked to stop. */
static int
chat_tty_deliver(char *line)
{
	int rc;

	tty.in_line = 1;
	rc = tty.fn(tty.arg, line);
	tty.in_line = 0;
	if (rc == -1)
		tty.stop = 1;
	return rc;
}

void
chat_tty_readable(int hup)
{
	size_t used;
	char *line;
	int rc;

	if (tty.eof || tty.stop)
		return;
	if (tty.editing) {
		/* A hung-up terminal has nothing more to read: libedit
		 * would report nothing and the loop would spin. */
		if (hup) {
			tty.eof = 1;
			(void)chat_tty_deliver(NULL);
			return;
		}
		rl_callback_read_char();
		if (!tty.active && !tty.stop && !tty.eof)
			chat_tty_activate();
		return;
	}
	rc = chat_tty_fill();
	while ((line = chat_tty_take(&used)) != NULL) {
		if (chat_tty_deliver(line) == -1)
			return;
		chat_tty_drop(used);
	}
	if (rc <= 0) {
		/* End of input: a last line without newline still counts. */
		tty.eof = 1;
		if ((line = chat_tty_rest()) != NULL &&
		    chat_tty_deliver(line) == -1)
			return;
		(void)chat_tty_deliver(NULL);
	}
}

/* Copy a secret line into buf (len bytes); 0, or -1 when too long. */
static int
chat_tty_copy_secret(char *buf, size_t len, char *line)
{
	size_t n = strlen(line);
	int rc = 0;

	if (n >= len)
		rc = -1;
	else
		memcpy(buf, line, n + 1);
	explicit_bzero(line, n);
	return rc;
}

int
chat_tty_secret(const char *prompt, char *buf, size_t len,
    const volatile sig_atomic_t *cancel)
{
	struct termios old, quiet;
	size_t n = 0, used;
	int istty, rc = 0, toolong = 0;
	char *line, ch;
	ssize_t r;

	if (len == 0)
		return -1;
	istty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	/* Without editing, input already read comes first; without a
	 * terminal, the next line of input is the answer. */
	if (!tty.editing) {
		for (;;) {
			if ((line = chat_tty_take(&used)) != NULL) {
				rc = chat_tty_copy_secret(buf, len, line);
				chat_tty_drop(used);
				return rc;
			}
			if (istty)
				break;
			if (chat_tty_fill() <= 0) {
				tty.eof = 1;
				if ((line = chat_tty_rest()) == NULL)
					return -1;
				return chat_tty_copy_secret(buf, len, line);
			}
		}
	}
	if (istty) {
		/* Canonical mode whatever libedit left: the line discipline
		 * does the erasing, and nothing is echoed.  Echo goes off
		 * before the prompt shows, so that nothing typed in answer
		 * to it can be echoed. */
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK);
		quiet.c_lflag |= ICANON | ECHONL;
		quiet.c_iflag |= ICRNL;
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
		(void)fputs(prompt, stdout);
		(void)fflush(stdout);
	}
	/* Byte by byte: nothing past the newline may be consumed, it is
	 * the next line's (libedit reads fd 0 itself). */
	for (;;) {
		r = read(STDIN_FILENO, &ch, 1);
		if (r == -1 && errno == EINTR && (cancel == NULL || !*cancel))
			continue;
		if (r <= 0) {
			rc = -1;
			break;
		}
		if (ch == '\n')
			break;
		if (n + 1 < len)
			buf[n++] = ch;
		else
			toolong = 1;
	}
	buf[n] = '\0';
	if (istty) {
		(void)tcsetattr(STDIN_FILENO, TCSANOW, &old);
		if (rc == -1)
			(void)fputs("\n", stdout);
		(void)fflush(stdout);
	}
	if (toolong || rc == -1) {
		explicit_bzero(buf, len);
		return -1;
	}
	return 0;
}

void
chat_tty_interrupt(void)
{
	int end;

	if (!chat_tty_showing())
		return;
	/* Leave the abandoned line visible, as shells do, and start a
	 * new empty one below it. */
	end = rl_line_buffer != NULL && rl_end > 0 ?
	    (int)strnlen(rl_line_buffer, (size_t)rl_end) : 0;
	chat_tty_erase();
	(void)printf("%s%.*s^C\n", tty.prompt, end,
	    end > 0 ? rl_line_buffer : "");
	/* Leaving and re-entering callback mode starts an empty line. */
	rl_callback_handler_remove();
	chat_tty_activate();
}

void
chat_tty_resize(void)
{
	if (tty.editing && tty.active)
		rl_resize_terminal();
}
