/* Host-side test of the probe's IPv6 code (net6.c), built with the host's libc under
 * AddressSanitizer: address text round trips, the answers to a solicitation, and a
 * mutation run over solicitations, echo requests and DHCPv6 replies (checksums fixed up
 * half the time so mutations get past them) where every frame sits in a heap block of
 * exactly its length, so a read past the frame is caught. `make host-test` runs it. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#define kprintf host_printf
#include "../probe.h"

void host_printf(const char *f, ...) { (void)f; }
volatile u64 ticks;
int net_reply_budget = -1;
static u8 last[2048];
static u32 lastn;
int net_tx(struct vdev *d, const u8 *f, u32 n)
{
	(void)d;
	assert(n <= 2036);
	memcpy(last, f, n);
	lastn = n;
	return 0;
}
void net_service(struct vdev *d) { (void)d, ticks++; }

#include "../net6.c"

static void text(const char *in, const char *want)
{
	u8 a[16];
	char b[40];
	int ok = parse_ip6(in, (u32)strlen(in), a);
	if (!want) {
		assert(!ok);
		return;
	}
	assert(ok);
	if (strcmp(fmt_ip6(a, b), want)) {
		fprintf(stderr, "%s: %s, not %s\n", in, b, want);
		abort();
	}
}

int main(void)
{
	text("2001:db8:0:1:0:0:0:10", "2001:db8:0:1::10");
	text("::", "::");
	text("1:0:0:2:0:0:0:3", "1:0:0:2::3");
	text("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1");
	text("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0");
	text("::1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7");
	text("FE80::FF:FE00:B", "fe80::ff:fe00:b");
	const char *bad[] = {"1:::2", "1:2", "12345::", ":1", "1:", "::1:2:3:4:5:6:7:8", "", "1::2::3", "g::"};
	for (u32 i = 0; i < sizeof bad / sizeof *bad; i++)
		text(bad[i], NULL);

	struct vdev d = {0};
	d.mac[0] = 2;
	d.mac[5] = 0xb;
	net6_on = 1;
	u8 g[16];
	parse_ip6("2001:db8::10", 12, g);
	net6_add_addr(g);
	net6_setup(&d);

	/* A solicitation from fe80::1 for 2001:db8::10, to its solicited-node group. */
	static u8 seeds[3][200];
	u32 sl[3];
	u8 *f = seeds[0];
	memcpy(f, (u8[]){0x33, 0x33, 0xff, 0, 0, 0x10, 2, 1, 2, 3, 4, 5, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255}, 22);
	parse_ip6("fe80::1", 7, f + 22);
	parse_ip6("ff02::1:ff00:10", 15, f + 38);
	f[54] = 135;
	memcpy(f + 62, g, 16);
	f[78] = 1;
	f[79] = 1;
	memcpy(f + 80, f + 6, 6);
	put16(f + 56, csum6(f + 22, f + 38, 58, f + 54, 32));
	sl[0] = 86;
	net6_rx_frame(&d, f, sl[0]);
	assert(lastn == 86 && last[54] == 136 && last[58] == 0x60 && !memcmp(last, f + 80, 6));
	assert(csum6(last + 22, last + 38, 58, last + 54, 32) == 0);
	/* The same from :: (duplicate address detection): to all nodes, not solicited. */
	memset(f + 22, 0, 16);
	f[78] = 0; /* no source link-layer option from :: (an unknown option 0 of length 1) */
	put16(f + 56, 0);
	put16(f + 56, csum6(f + 22, f + 38, 58, f + 54, 32));
	lastn = 0;
	net6_rx_frame(&d, f, sl[0]);
	assert(lastn == 86 && last[0] == 0x33 && last[5] == 1 && last[58] == 0x20);
	/* Every truncation is ignored. */
	for (u32 n = 0; n < sl[0]; n++) {
		lastn = 0;
		net6_rx_frame(&d, f, n);
		assert(!lastn);
	}
	parse_ip6("fe80::1", 7, f + 22);
	f[78] = 1;
	put16(f + 56, 0);
	put16(f + 56, csum6(f + 22, f + 38, 58, f + 54, 32));

	/* An echo request to 2001:db8::10. */
	f = seeds[1];
	memcpy(f, seeds[0], 86);
	memcpy(f + 38, g, 16);
	f[19] = 64;
	f[54] = 128;
	memset(f + 56, 0, 2);
	put16(f + 56, csum6(f + 22, f + 38, 58, f + 54, 64));
	sl[1] = 54 + 64;
	lastn = 0;
	net6_rx_frame(&d, f, sl[1]);
	assert(lastn == sl[1] && last[54] == 129 && !memcmp(last + 22, g, 16));

	/* A DHCPv6 Advertise-like reply to the link-local address, port 547 to 546. */
	f = seeds[2];
	memcpy(f, seeds[0], 54);
	f[20] = 17;
	memcpy(f + 38, ll6, 16);
	put16(f + 54, 547);
	put16(f + 56, 546);
	u8 *m = f + 62;
	m[0] = 2;
	m[1] = 0x36;
	m[2] = 0;
	m[3] = 0xb;
	u32 o = 4;
	put16(m + o, 1), put16(m + o + 2, 10), put16(m + o + 4, 3), put16(m + o + 6, 1);
	memcpy(m + o + 8, d.mac, 6);
	o += 14;
	put16(m + o, 2), put16(m + o + 2, 4);
	o += 8;
	put16(m + o, 3), put16(m + o + 2, 12 + 28);
	o += 16;
	put16(m + o, 5), put16(m + o + 2, 24);
	memcpy(m + o + 4, g, 16);
	put32(m + o + 24, 100);
	o += 28;
	u32 ul = 8 + o;
	put16(f + 58, (u16)ul);
	put16(f + 18, (u16)ul);
	put16(f + 60, csum6(f + 22, f + 38, 17, f + 54, ul));
	sl[2] = 54 + ul;
	d6_state = 1;
	d6_xid = 0x36000b;
	net6_rx_frame(&d, f, sl[2]);
	assert(d6_state == 2 && d6_ngot == 1);

	srand(1);
	u8 buf[300];
	for (long it = 0; it < 1000000; it++) {
		int s = (int)(it % 3);
		u32 n = sl[s];
		memcpy(buf, seeds[s], n);
		for (int j = rand() % 4; j > 0; j--)
			buf[rand() % n] = (u8)rand();
		u32 pl = (u32)((buf[18] << 8) | buf[19]);
		if (rand() % 2 && 54 + pl <= n && pl >= 8) {
			if (buf[20] == 58) {
				if (rand() % 2)
					buf[54] = (u8)(135 + rand() % 2);
				put16(buf + 56, 0);
				put16(buf + 56, csum6(buf + 22, buf + 38, 58, buf + 54, pl));
			} else if (buf[20] == 17) {
				put16(buf + 60, 0);
				put16(buf + 60, csum6(buf + 22, buf + 38, 17, buf + 54, pl));
			}
		}
		if (rand() % 4 == 0)
			n = (u32)rand() % (n + 1);
		u8 *heap = malloc(n ? n : 1);
		memcpy(heap, buf, n);
		d6_state = 1 + rand() % 2;
		nd_state = 1;
		memcpy(nd_want, g, 16);
		echo_state = 1;
		net6_rx_frame(&d, heap, n);
		free(heap);
	}
	printf("net6 host test: ok\n");
	return 0;
}
