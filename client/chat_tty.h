/*
 * chat_tty.h - chat(1)'s terminal: line input (edited with libedit, with
 * history, when stdin and stdout are a terminal; plain lines otherwise),
 * output that can arrive at any time without breaking the line being
 * typed, and password input without echo.
 *
 * Input is driven by the caller's poll loop: when fd 0 is readable it
 * calls chat_tty_readable(), which hands every complete line to the
 * line function given to chat_tty_init().  There is one terminal per
 * process, and libedit's readline interface is process-global, so this
 * module keeps its state in one static struct instead of a handle.
 */
#ifndef CHATD_CHAT_TTY_H
#define CHATD_CHAT_TTY_H

#include <signal.h>
#include <stddef.h>

/*
 * Called with each line typed (without its newline; the callee may
 * modify it, it is freed after the call), or NULL at end of input.
 * Return 0 to go on, -1 to stop reading lines already buffered (the
 * caller is quitting).
 */
typedef int chat_tty_line_fn(void *arg, char *line);

/* editing: use libedit (stdin and stdout must be a terminal). */
void chat_tty_init(int editing, chat_tty_line_fn *fn, void *arg);
/* Restore the terminal.  Safe to call twice. */
void chat_tty_close(void);

/*
 * Set the prompt shown while waiting for a line (only with editing;
 * "" for none).  The first call starts line editing and shows it.
 */
void chat_tty_set_prompt(const char *prompt);

/*
 * fd 0 is readable (or hung up, hup set): read what is there and call
 * the line function for each complete line.
 */
void chat_tty_readable(int hup);

/*
 * Print text followed by a newline.  While a line is being edited, the
 * prompt and the line are erased first and drawn again below the text,
 * with the cursor where it was, so the text being typed is not broken.
 */
void chat_tty_print(const char *text);
void chat_tty_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * Read a secret line (a password) after showing prompt: without echo
 * when stdin is a terminal, else the next line of input.  0 with the
 * NUL-terminated line in buf, or -1 at end of input, when the line does
 * not fit in len - 1 bytes, or when a signal interrupts the read and
 * *cancel is set (cancel may be NULL).
 */
int chat_tty_secret(const char *prompt, char *buf, size_t len,
    const volatile sig_atomic_t *cancel);

/* Remember a line in the editing history (nothing without editing). */
void chat_tty_history(const char *line);

/* ^C: abandon the line being typed and start a fresh one. */
void chat_tty_interrupt(void);
/* The terminal changed size. */
void chat_tty_resize(void);

#endif
