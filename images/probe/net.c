/* probe guest: a minimal IPv4 responder (ARP requests, ICMP echo) on virtio-net, and a
 * DHCP client for eth0 (probe.dhcp). */
#include "probe.h"


typedef u64 __attribute__((may_alias, aligned(1))) u64_unaligned;

/* Internet checksum. Sums little-endian 16-bit words 8 bytes at a time (the ones'
 * complement sum is byte-order independent) and swaps the result at the end. */
static u16 csum(const u8 *p, u32 n)
{
	u64 s = 0;
	u32 i = 0;
	for (; i + 8 <= n; i += 8) {
		u64 w = *(const u64_unaligned *)(p + i);
		s += (w & 0xffffffffUL) + (w >> 32);
	}
	for (; i + 2 <= n; i += 2)
		s += (u32)(p[i] | (p[i + 1] << 8));
	if (i < n)
		s += p[i];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	u16 r = (u16)~s;
	return (u16)((r >> 8) | (r << 8));
}

int net_noip4;

static int our_ip_dev(struct vdev *d) { return net_ip && d->netidx == 0; }

static u8 frame[1536] __attribute__((section(".noinit")));

static struct vdev *dev4;    /* eth0, once set up */
static u32 arp_want;         /* the address asked for, then the echo's destination */
static u8 arp_mac[6];
static volatile int arp_state;   /* 1 asking, 2 answered */
static volatile int echo4_state; /* 1 waiting, 2 answered */
#define ECHO4_ID 0x5034

static void send_arp(struct vdev *d, u16 op, const u8 *dmac, const u8 *tha, u32 tpa)
{
	u8 *f = frame;
	memcpy(f, dmac, 6);
	memcpy(f + 6, d->mac, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);      /* htype ethernet */
	put16(f + 16, 0x0800); /* ptype IPv4 */
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, op);
	memcpy(f + 22, d->mac, 6);
	put32(f + 28, net_ip);
	memcpy(f + 32, tha, 6);
	put32(f + 38, tpa);
	net_tx(d, f, 42);
}

/* ---------------- DHCP client (RFC 2131, the four-message exchange only) ---------------- */

int net_dhcp;
static int dhcp_state; /* 0 off, 1 discovering, 2 offered, 3 bound */
static u32 dhcp_xid, dhcp_yiaddr, dhcp_server, dhcp_mask, dhcp_router;

static void dhcp_send(struct vdev *d, u8 type)
{
	u8 *f = frame;
	memset(f, 0, 14 + 20 + 8 + 300);
	memset(f, 0xff, 6);
	memcpy(f + 6, d->mac, 6);
	put16(f + 12, 0x0800);
	u8 *b = f + 14 + 20 + 8; /* BOOTP */
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	put32(b + 4, dhcp_xid);
	put16(b + 10, 0x8000); /* broadcast replies: we have no address to take a unicast */
	memcpy(b + 28, d->mac, 6);
	put32(b + 236, 0x63825363);
	u8 *o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = type;
	if (type == 3) {
		*o++ = 50, *o++ = 4, put32(o, dhcp_yiaddr), o += 4;
		*o++ = 54, *o++ = 4, put32(o, dhcp_server), o += 4;
	}
	*o++ = 55, *o++ = 3, *o++ = 1, *o++ = 3, *o++ = 26;
	*o++ = 255;
	u32 blen = 300;
	u8 *u = f + 14 + 20;
	put16(u, 68);
	put16(u + 2, 67);
	put16(u + 4, (u16)(8 + blen));
	u8 *ip = f + 14; /* from 0.0.0.0 to 255.255.255.255; UDP checksum 0 (none) */
	ip[0] = 0x45;
	put16(ip + 2, (u16)(20 + 8 + blen));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 16, 0xffffffff);
	put16(ip + 10, csum(ip, 20));
	net_tx(d, f, 14 + 20 + 8 + blen);
}

/* An OFFER, ACK or NAK for our transaction; everything else is ignored. */
static void dhcp_rx(struct vdev *d, const u8 *p, u32 len)
{
	if (len < 14 + 20 + 8 + 240)
		return;
	const u8 *ip = p + 14;
	u32 ihl = (u32)(ip[0] & 15) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 17 || 14 + ihl + 8 + 240 > len)
		return;
	const u8 *u = ip + ihl;
	if (be16(u + 2) != 68)
		return;
	const u8 *b = u + 8;
	if (b[0] != 2 || be32(b + 4) != dhcp_xid || memcmp(b + 28, d->mac, 6) || be32(b + 236) != 0x63825363)
		return;
	u32 type = 0, server = 0, mask = 0, router = 0;
	for (u32 i = 14 + ihl + 8 + 240; i < len;) {
		u8 c = p[i];
		if (c == 255)
			break;
		if (c == 0) {
			i++;
			continue;
		}
		if (i + 2 > len || i + 2 + p[i + 1] > len)
			return;
		u32 n = p[i + 1];
		const u8 *v = p + i + 2;
		if (c == 53 && n == 1)
			type = v[0];
		else if (c == 54 && n == 4)
			server = be32(v);
		else if (c == 1 && n == 4)
			mask = be32(v);
		else if (c == 3 && n >= 4)
			router = be32(v);
		i += 2 + n;
	}
	if (dhcp_state == 1 && type == 2 && be32(b + 16)) {
		dhcp_yiaddr = be32(b + 16);
		dhcp_server = server;
		dhcp_state = 2;
	} else if (dhcp_state == 2 && type == 5 && be32(b + 16) == dhcp_yiaddr) {
		dhcp_mask = mask;
		dhcp_router = router;
		dhcp_state = 3;
	} else if (dhcp_state == 2 && type == 6) {
		dhcp_state = 1;
	}
}

/* Polls eth0 for up to `t` PIT ticks (~55 ms each) or until the state leaves `from`. */
static void dhcp_wait(struct vdev *d, int from, u64 t)
{
	u64 t0 = ticks;
	while (dhcp_state == from && ticks - t0 < t)
		net_service(d);
}

/* DISCOVER, OFFER, REQUEST, ACK, up to four times; the address replaces ip='s. */
static void dhcp_run(struct vdev *d)
{
	for (u32 try = 0; try < 4 && dhcp_state != 3; try++) {
		dhcp_xid = 0x53545200u + try + ((u32)d->mac[5] << 24);
		dhcp_state = 1;
		dhcp_send(d, 1);
		dhcp_wait(d, 1, 18 + 18 * try);
		if (dhcp_state != 2)
			continue;
		dhcp_send(d, 3);
		dhcp_wait(d, 2, 18 + 18 * try);
	}
	if (dhcp_state != 3) {
		dhcp_state = 0;
		kprintf("probe: dhcp failed\n");
		return;
	}
	dhcp_state = 0;
	u32 pfx = 0;
	while (pfx < 32 && (dhcp_mask & (0x80000000U >> pfx)))
		pfx++;
	u32 a = dhcp_yiaddr, r = dhcp_router;
	kprintf("probe: dhcp %u.%u.%u.%u/%u router %u.%u.%u.%u\n", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
		a & 255, pfx, r >> 24, (r >> 16) & 255, (r >> 8) & 255, r & 255);
	net_ip = a;
	net_prefix = pfx;
	net_gw = r;
}

static void wait4(volatile int *st, int from, u64 t)
{
	u64 t0 = ticks;
	while (*st == from && ticks - t0 < t)
		net_service(dev4);
}

static void print_ping(u32 a, const char *what)
{
	kprintf("probe: ping %u.%u.%u.%u %s\n", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, what);
}

/* `ping <dst>`: resolves the next hop's MAC (dst on eth0's subnet, else the gateway), sends
 * up to three echo requests from eth0's address and prints
 * `probe: ping <dst> reply|no-reply|no-neighbour`. */
void net_ping(u32 dst)
{
	if (!dev4 || !net_ip) {
		print_ping(dst, "no-neighbour");
		return;
	}
	u32 mask = net_prefix ? 0xffffffffU << (32 - net_prefix) : 0;
	u32 hop = ((dst ^ net_ip) & mask) && net_gw ? net_gw : dst;
	static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const u8 zero[6] = {0, 0, 0, 0, 0, 0};
	arp_want = hop;
	arp_state = 1;
	for (u32 t = 0; t < 3 && arp_state == 1; t++) {
		send_arp(dev4, 1, bcast, zero, hop);
		wait4(&arp_state, 1, 18);
	}
	if (arp_state != 2) {
		arp_state = 0;
		print_ping(dst, "no-neighbour");
		return;
	}
	arp_state = 0;
	arp_want = dst;
	echo4_state = 1;
	for (u16 seq = 1; seq <= 3 && echo4_state == 1; seq++) {
		u8 *f = frame;
		memcpy(f, arp_mac, 6);
		memcpy(f + 6, dev4->mac, 6);
		put16(f + 12, 0x0800);
		u8 *o = f + 14;
		memset(o, 0, 20 + 16);
		o[0] = 0x45;
		put16(o + 2, 20 + 16);
		put16(o + 4, seq);
		o[8] = 64;
		o[9] = 1;
		put32(o + 12, net_ip);
		put32(o + 16, dst);
		put16(o + 10, csum(o, 20));
		u8 *m = o + 20;
		m[0] = 8;
		put16(m + 4, ECHO4_ID);
		put16(m + 6, seq);
		memcpy(m + 8, "strato-4", 8);
		put16(m + 2, csum(m, 16));
		net_tx(dev4, f, 14 + 20 + 16);
		wait4(&echo4_state, 1, 18);
	}
	print_ping(dst, echo4_state == 2 ? "reply" : "no-reply");
	echo4_state = 0;
}

void net_setup(struct vdev *d)
{
	const u8 *m = d->mac;
	kprintf("probe: net eth%d mac %02x:%02x:%02x:%02x:%02x:%02x\n", d->netidx, m[0], m[1], m[2], m[3],
		m[4], m[5]);
	if (net_noip4 && d->netidx == 0)
		net_ip = 0;
	else if (net_dhcp && d->netidx == 0)
		dhcp_run(d);
	if (d->netidx == 0)
		dev4 = d;
	if (our_ip_dev(d)) {
		kprintf("probe: ip %u.%u.%u.%u/%u\n", net_ip >> 24, (net_ip >> 16) & 255, (net_ip >> 8) & 255,
			net_ip & 255, net_prefix);
		static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		static const u8 zero[6] = {0, 0, 0, 0, 0, 0};
		send_arp(d, 1, bcast, zero, net_ip); /* gratuitous ARP */
	}
	net6_setup(d);
}

static void rx_arp(struct vdev *d, const u8 *p, u32 len)
{
	if (len < 42 || be16(p + 14) != 1 || be16(p + 16) != 0x0800 || p[18] != 6 || p[19] != 4)
		return;
	if (be16(p + 20) == 2 && arp_state == 1 && be32(p + 28) == arp_want && be32(p + 38) == net_ip &&
	    !(p[22] & 1)) {
		memcpy(arp_mac, p + 22, 6);
		arp_state = 2;
		return;
	}
	if (be16(p + 20) != 1 || be32(p + 38) != net_ip)
		return;
	if (net_reply_budget == 0)
		return;
	if (net_reply_budget > 0 && --net_reply_budget == 0)
		kprintf("probe: net silent\n");
	u8 sha[6];
	memcpy(sha, p + 22, 6);
	send_arp(d, 2, sha, sha, be32(p + 28));
}

int net_reply_budget = -1;

static void rx_ipv4(struct vdev *d, const u8 *p, u32 len)
{
	if (net_reply_budget == 0)
		return;
	if (len < 34)
		return;
	const u8 *ip = p + 14;
	u32 ihl = (u32)(ip[0] & 15) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20)
		return;
	u32 tot = be16(ip + 2);
	if (tot < ihl + 8 || 14 + tot > len || tot > sizeof(frame) - 14)
		return;
	if (ip[9] != 1 || be32(ip + 16) != net_ip || (be16(ip + 6) & 0x3fff)) /* ICMP, to us, unfragmented */
		return;
	const u8 *icmp = ip + ihl;
	if (icmp[0] == 0 && icmp[1] == 0 && echo4_state == 1 && be32(ip + 12) == arp_want &&
	    be16(icmp + 4) == ECHO4_ID) {
		echo4_state = 2;
		return;
	}
	if (icmp[0] != 8 || icmp[1] != 0)
		return;
	u8 *f = frame;
	u32 ilen = tot - ihl;
	memcpy(f, p + 6, 6); /* to the sender's MAC */
	memcpy(f + 6, d->mac, 6);
	put16(f + 12, 0x0800);
	u8 *o = f + 14;
	o[0] = 0x45;
	o[1] = 0;
	put16(o + 2, (u16)(20 + ilen));
	put16(o + 4, be16(ip + 4));
	put16(o + 6, 0);
	o[8] = 64;
	o[9] = 1;
	put16(o + 10, 0);
	put32(o + 12, net_ip);
	memcpy(o + 16, ip + 12, 4);
	put16(o + 10, csum(o, 20));
	u8 *r = o + 20;
	memcpy(r, icmp, ilen);
	r[0] = 0; /* echo reply */
	r[2] = 0;
	r[3] = 0;
	put16(r + 2, csum(r, ilen));
	net_tx(d, f, 14 + 20 + ilen);
}

void net_rx_frame(struct vdev *d, const u8 *p, u32 len)
{
	if (dhcp_state && d->netidx == 0 && len >= 14 && be16(p + 12) == 0x0800)
		dhcp_rx(d, p, len);
	if (len >= 14 && be16(p + 12) == 0x86dd) {
		net6_rx_frame(d, p, len);
		return;
	}
	if (!our_ip_dev(d) || len < 14)
		return;
	u16 et = be16(p + 12);
	if (et == 0x0806)
		rx_arp(d, p, len);
	else if (et == 0x0800)
		rx_ipv4(d, p, len);
}
