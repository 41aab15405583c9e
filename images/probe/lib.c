/* probe guest: string helpers, serial console output, a tiny printf. */
#include <stdarg.h>
#include "probe.h"

#define COM1 0x3f8

/* rep movsq/stosq for the bulk, rep movsb/stosb for the tail: each iteration of a string
 * instruction costs about one emulated instruction on software-assisted KVM hosts. */
void *memcpy(void *d, const void *s, usize n)
{
	void *ret = d;
	usize q = n >> 3, r = n & 7;
	__asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(q) : : "memory");
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(r) : : "memory");
	return ret;
}

void *memset(void *d, int c, usize n)
{
	void *ret = d;
	u64 v = (u8)c * 0x0101010101010101UL;
	usize q = n >> 3, r = n & 7;
	__asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(v) : "memory");
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(r) : "a"(v) : "memory");
	return ret;
}

void *memmove(void *d, const void *s, usize n)
{
	u8 *dp = d;
	const u8 *sp = s;
	if (dp <= sp || dp >= sp + n)
		return memcpy(d, s, n);
	while (n--)
		dp[n] = sp[n];
	return d;
}

int memcmp(const void *a, const void *b, usize n)
{
	const u8 *x = a, *y = b;
	if ((((u64)a | (u64)b | n) & 7) == 0) {
		const u64 *p = a, *q = b;
		usize i;
		for (i = 0; i < n / 8; i++)
			if (p[i] != q[i])
				break;
		x += i * 8;
		y += i * 8;
		n -= i * 8;
	}
	for (usize i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

usize strlen(const char *s)
{
	usize n = 0;
	while (s[n])
		n++;
	return n;
}

int str_eq_n(const char *a, usize alen, const char *b)
{
	usize i;
	for (i = 0; i < alen; i++)
		if (b[i] != a[i] || !b[i])
			return 0;
	return b[i] == 0;
}

usize parse_u64(const char *s, usize n, u64 *out)
{
	usize i = 0;
	u64 v = 0;
	if (n >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++) {
			char c = s[i];
			u32 d;
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				break;
			v = (v << 4) | d;
		}
		if (i == 2)
			return 0;
	} else {
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			v = v * 10 + (u64)(s[i] - '0');
	}
	*out = v;
	return i;
}

/* ---------------- serial console (8250, polled) ---------------- */

volatile u8 uart_lsr_saved;

static void con_putc(char c)
{
	/* wait for THR empty (LSR bit 5); bounded so a missing UART cannot hang us. Reading LSR
	 * clears its break bit, so keep it for the receiver (as Linux's 8250 driver does). */
	for (u32 i = 0; i < 100000; i++) {
		u8 lsr = inb(COM1 + 5);
		uart_lsr_saved |= lsr & 0x10;
		if (lsr & 0x20)
			break;
	}
	outb(COM1, (u8)c);
}

void con_write(const char *s, usize n)
{
	for (usize i = 0; i < n; i++)
		con_putc(s[i]);
}

/* ---------------- printf ---------------- */

struct pbuf {
	char b[128];
	u32 n;
};

static void pb_flush(struct pbuf *p)
{
	con_write(p->b, p->n);
	p->n = 0;
}

static void pb_put(struct pbuf *p, char c)
{
	if (p->n == sizeof(p->b))
		pb_flush(p);
	p->b[p->n++] = c;
}

static void pb_num(struct pbuf *p, u64 v, u32 base, u32 width, int neg)
{
	char tmp[24];
	u32 n = 0;
	do {
		u32 d = (u32)(base == 16 ? (v & 15) : (v % 10));
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v = base == 16 ? v >> 4 : v / 10;
	} while (v);
	if (neg)
		pb_put(p, '-');
	while (width > n) {
		pb_put(p, '0');
		width--;
	}
	while (n)
		pb_put(p, tmp[--n]);
}

/* Supports %s %.*s %c %d %u %x with l/ll and a zero-padded width (%016lx), %%. */
void kprintf(const char *fmt, ...)
{
	struct pbuf p;
	va_list ap;
	p.n = 0;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			pb_put(&p, *fmt);
			continue;
		}
		fmt++;
		u32 width = 0;
		int prec = -1, lng = 0;
		while (*fmt == '0')
			fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (u32)(*fmt++ - '0');
		if (*fmt == '.' && fmt[1] == '*') {
			prec = va_arg(ap, int);
			fmt += 2;
		}
		while (*fmt == 'l') {
			lng = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			for (int i = 0; (prec < 0 || i < prec) && s[i]; i++)
				pb_put(&p, s[i]);
			break;
		}
		case 'c':
			pb_put(&p, (char)va_arg(ap, int));
			break;
		case 'd': {
			i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
			pb_num(&p, v < 0 ? (u64)-v : (u64)v, 10, width, v < 0);
			break;
		}
		case 'u':
			pb_num(&p, lng ? va_arg(ap, u64) : va_arg(ap, u32), 10, width, 0);
			break;
		case 'x':
			pb_num(&p, lng ? va_arg(ap, u64) : va_arg(ap, u32), 16, width, 0);
			break;
		case '%':
			pb_put(&p, '%');
			break;
		case 0:
			fmt--;
			break;
		default:
			pb_put(&p, '%');
			pb_put(&p, *fmt);
		}
	}
	va_end(ap);
	pb_flush(&p);
}
