/* probe guest: IPv6 on eth0. A link-local address from the MAC (EUI-64), addresses from
 * the command line (probe.ip6=) or from its own stateful DHCPv6 client (probe.dhcp6),
 * neighbour advertisements for them (answers to solicitations, DAD's from :: included),
 * ICMPv6 echo replies, and one router solicitation at start to learn the default router.
 * Every frame is hostile input: each length is checked against the frame before use. */
#include "probe.h"

#define ETH_IP6 0x86dd
#define NH_UDP 17
#define NH_ICMP6 58
#define T_ECHO_REQ 128
#define T_ECHO_REP 129
#define T_RS 133
#define T_RA 134
#define T_NS 135
#define T_NA 136

int net6_on;
int net6_dhcp;
static u8 ll6[16];               /* fe80::/64 + EUI-64 of eth0's MAC */
static u8 addr6[MAX_IP6][16];    /* global addresses: command line, then DHCPv6 */
static u32 naddr6;
static u8 router6[16];
static int have_router;
static struct vdev *dev6;        /* eth0, once set up */

static u8 frame6[1536] __attribute__((section(".noinit")));


/* ---------------- addresses ---------------- */

/* Parses RFC 4291 text (hex groups, one `::`; no embedded IPv4). 1 when it is whole. */
int parse_ip6(const char *s, u32 n, u8 out[16])
{
	u16 head[8], tail[8];
	u32 nh = 0, nt = 0, i = 0;
	int gap = 0;
	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 1;
		i = 2;
	}
	while (i < n) {
		u32 v = 0, d = 0;
		while (i < n && d < 5) {
			char c = s[i];
			u32 x = c >= '0' && c <= '9' ? (u32)(c - '0') : c >= 'a' && c <= 'f' ? (u32)(c - 'a' + 10)
				: c >= 'A' && c <= 'F' ? (u32)(c - 'A' + 10) : 16;
			if (x == 16)
				break;
			v = v * 16 + x;
			d++;
			i++;
		}
		if (d == 0 || d > 4 || nh + nt >= 8)
			return 0;
		if (gap)
			tail[nt++] = (u16)v;
		else
			head[nh++] = (u16)v;
		if (i == n)
			break;
		if (s[i] != ':')
			return 0;
		i++;
		if (i < n && s[i] == ':') {
			if (gap)
				return 0;
			gap = 1;
			i++;
		} else if (i == n) {
			return 0; /* a trailing single ':' */
		}
	}
	if (gap ? nh + nt > 7 : nh != 8)
		return 0;
	memset(out, 0, 16);
	for (u32 k = 0; k < nh; k++)
		put16(out + 2 * k, head[k]);
	for (u32 k = 0; k < nt; k++)
		put16(out + 16 - 2 * (nt - k), tail[k]);
	return 1;
}

/* RFC 5952 text (the longest run of two or more zero groups as `::`, the first on a tie),
 * the form Rust's Ipv6Addr prints, so tests compare strings. `b` holds 40 bytes. */
static const char *fmt_ip6(const u8 a[16], char *b)
{
	u32 best = 0, blen = 0;
	for (u32 i = 0; i < 8;) {
		u32 j = i;
		while (j < 8 && !be16(a + 2 * j))
			j++;
		if (j - i > blen) {
			best = i;
			blen = j - i;
		}
		i = j > i ? j : i + 1;
	}
	if (blen < 2)
		blen = 0;
	static const char hex[] = "0123456789abcdef";
	char *o = b;
	for (u32 i = 0; i < 8; i++) {
		if (blen && i == best) {
			*o++ = ':';
			if (i == 0)
				*o++ = ':';
			i += blen - 1;
			continue;
		}
		u16 g = be16(a + 2 * i);
		int started = 0;
		for (int sh = 12; sh >= 0; sh -= 4) {
			u32 x = (g >> sh) & 15;
			if (x || started || sh == 0) {
				*o++ = hex[x];
				started = 1;
			}
		}
		if (i < 7)
			*o++ = ':';
	}
	*o = 0;
	return b;
}

void net6_add_addr(const u8 a[16])
{
	for (u32 i = 0; i < naddr6; i++)
		if (!memcmp(addr6[i], a, 16))
			return;
	if (naddr6 < MAX_IP6)
		memcpy(addr6[naddr6++], a, 16);
}

/* Whether `a` is one of eth0's unicast addresses. */
static int ours(const u8 *a)
{
	if (!memcmp(a, ll6, 16))
		return 1;
	for (u32 i = 0; i < naddr6; i++)
		if (!memcmp(a, addr6[i], 16))
			return 1;
	return 0;
}

/* Whether `a` is ff02::1 or the solicited-node group (ff02::1:ffXX:XXXX) of one of ours. */
static int our_multicast(const u8 *a)
{
	static const u8 sn[13] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
	static const u8 all[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	if (!memcmp(a, all, 16))
		return 1;
	if (memcmp(a, sn, 13))
		return 0;
	if (!memcmp(a + 13, ll6 + 13, 3))
		return 1;
	for (u32 i = 0; i < naddr6; i++)
		if (!memcmp(a + 13, addr6[i] + 13, 3))
			return 1;
	return 0;
}

/* ---------------- sending ---------------- */

/* The ones' complement sum of an upper-layer packet with its IPv6 pseudo-header. */
static u16 csum6(const u8 *src, const u8 *dst, u8 nh, const u8 *p, u32 n)
{
	u32 s = 0;
	for (u32 i = 0; i < 16; i += 2)
		s += be16(src + i) + be16(dst + i);
	s += (n >> 16) + (n & 0xffff) + nh;
	for (u32 i = 0; i + 1 < n; i += 2)
		s += be16(p + i);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (u16)~s;
}

/* Fills frame6's Ethernet and IPv6 headers around `plen` payload bytes already at
 * frame6 + 54, sets the checksum at `ck` bytes into the payload, and sends. A multicast
 * `dst` goes to its 33:33 MAC, else to `dmac`. */
static void send6(const u8 *dmac, const u8 *src, const u8 *dst, u8 nh, u8 hops, u32 plen, u32 ck)
{
	u8 *f = frame6;
	if (dst[0] == 0xff) {
		f[0] = 0x33;
		f[1] = 0x33;
		memcpy(f + 2, dst + 12, 4);
	} else {
		memcpy(f, dmac, 6);
	}
	memcpy(f + 6, dev6->mac, 6);
	put16(f + 12, ETH_IP6);
	u8 *ip = f + 14;
	put32(ip, 0x60000000);
	put16(ip + 4, (u16)plen);
	ip[6] = nh;
	ip[7] = hops;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, dst, 16);
	u8 *pl = ip + 40;
	put16(pl + ck, 0);
	put16(pl + ck, csum6(src, dst, nh, pl, plen));
	net_tx(dev6, f, 14 + 40 + plen);
}

static void send_rs(void)
{
	static const u8 all_routers[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
	u8 *m = frame6 + 54;
	memset(m, 0, 16);
	m[0] = T_RS;
	m[8] = 1; /* source link-layer address */
	m[9] = 1;
	memcpy(m + 10, dev6->mac, 6);
	send6(NULL, ll6, all_routers, NH_ICMP6, 255, 16, 2);
}

/* An MLDv2 report (RFC 3810 5.2) joining the solicited-node groups of eth0's addresses,
 * so that a bridge that snoops multicast keeps forwarding them here: from the link-local
 * address to ff02::16, hop limit 1, behind a hop-by-hop header with the router alert. */
static void send_mld_report(void)
{
	static const u8 mld_routers[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x16};
	static const u8 sn[13] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
	u8 *f = frame6;
	u8 *hbh = f + 54;
	u8 *m = hbh + 8;
	u32 nrec = 0;
	for (u32 i = 0; i <= naddr6; i++) {
		u8 *r = m + 8 + 20 * nrec++;
		memset(r, 0, 20);
		r[0] = 4; /* CHANGE_TO_EXCLUDE_MODE with no sources: join */
		memcpy(r + 4, sn, 13);
		memcpy(r + 17, (i == naddr6 ? ll6 : addr6[i]) + 13, 3);
	}
	u32 len = 8 + 20 * nrec;
	memset(m, 0, 8);
	m[0] = 143;
	put16(m + 6, (u16)nrec);
	put16(m + 2, csum6(ll6, mld_routers, NH_ICMP6, m, len));
	hbh[0] = NH_ICMP6;
	hbh[1] = 0;
	hbh[2] = 5; /* router alert: MLD */
	hbh[3] = 2;
	hbh[4] = 0;
	hbh[5] = 0;
	hbh[6] = 1; /* PadN, 0 bytes */
	hbh[7] = 0;
	f[0] = 0x33;
	f[1] = 0x33;
	memcpy(f + 2, mld_routers + 12, 4);
	memcpy(f + 6, dev6->mac, 6);
	put16(f + 12, ETH_IP6);
	u8 *ip = f + 14;
	put32(ip, 0x60000000);
	put16(ip + 4, (u16)(8 + len));
	ip[6] = 0; /* hop-by-hop options */
	ip[7] = 1;
	memcpy(ip + 8, ll6, 16);
	memcpy(ip + 24, mld_routers, 16);
	net_tx(dev6, f, 14 + 40 + 8 + len);
}

/* A neighbour advertisement for `target`: solicited (S) to the asker, or, for a DAD probe
 * from ::, to all nodes without S (RFC 4861 7.2.4). */
static void send_na(const u8 *target, const u8 *to, const u8 *to_mac)
{
	static const u8 all_nodes[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	int dad = !memcmp(to, (const u8[16]){0}, 16);
	u8 *m = frame6 + 54;
	memset(m, 0, 32);
	m[0] = T_NA;
	m[4] = dad ? 0x20 : 0x60; /* O, and S unless DAD */
	memcpy(m + 8, target, 16);
	m[24] = 2; /* target link-layer address */
	m[25] = 1;
	memcpy(m + 26, dev6->mac, 6);
	send6(to_mac, target, dad ? all_nodes : to, NH_ICMP6, 255, 32, 2);
}

/* ---------------- DHCPv6 client (Solicit, Advertise, Request, Reply) ---------------- */

#define D_SOLICIT 1
#define D_ADVERTISE 2
#define D_REQUEST 3
#define D_REPLY 7
#define MAX_SID 130
#define MAX_IA 256

static int d6_state; /* 0 off, 1 soliciting, 2 requesting, 3 bound */
static u32 d6_xid;
static u8 d6_sid[MAX_SID];
static u32 d6_sidlen;
static u8 d6_ia[MAX_IA]; /* the Advertise's IA_NA body, asked for again in the Request */
static u32 d6_ialen;
static u8 d6_got[MAX_IP6][16];
static u32 d6_ngot;

static void d6_send(u8 type)
{
	static const u8 all_servers[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2};
	u8 *u = frame6 + 54;
	u8 *m = u + 8;
	u8 *o = m + 4;
	m[0] = type;
	m[1] = (u8)(d6_xid >> 16);
	m[2] = (u8)(d6_xid >> 8);
	m[3] = (u8)d6_xid;
	put16(o, 1); /* client identifier: DUID-LL, Ethernet, the MAC */
	put16(o + 2, 10);
	put16(o + 4, 3);
	put16(o + 6, 1);
	memcpy(o + 8, dev6->mac, 6);
	o += 14;
	put16(o, 8); /* elapsed time: 0 */
	put16(o + 2, 2);
	put16(o + 4, 0);
	o += 6;
	if (type == D_REQUEST) {
		put16(o, 2);
		put16(o + 2, (u16)d6_sidlen);
		memcpy(o + 4, d6_sid, d6_sidlen);
		o += 4 + d6_sidlen;
	}
	put16(o, 3); /* IA_NA */
	if (type == D_REQUEST && d6_ialen >= 12) {
		put16(o + 2, (u16)d6_ialen);
		memcpy(o + 4, d6_ia, d6_ialen);
		memset(o + 8, 0, 8); /* T1, T2: the server's choice */
		o += 4 + d6_ialen;
	} else {
		put16(o + 2, 12);
		put32(o + 4, 1); /* IAID */
		memset(o + 8, 0, 8);
		o += 16;
	}
	u32 len = (u32)(o - u);
	put16(u, 546);
	put16(u + 2, 547);
	put16(u + 4, (u16)len);
	send6(NULL, ll6, all_servers, NH_UDP, 1, len, 6);
}

/* Collects the addresses of an IA_NA body (`b`, `n` bytes: IAID, T1, T2, options). */
static void d6_take_ia(const u8 *b, u32 n)
{
	d6_ngot = 0;
	for (u32 i = 12; i + 4 <= n;) {
		u32 code = be16(b + i), len = be16(b + i + 2);
		if (i + 4 + len > n)
			return;
		const u8 *v = b + i + 4;
		if (code == 13 && len >= 2 && be16(v)) { /* a status other than success */
			d6_ngot = 0;
			return;
		}
		if (code == 5 && len >= 24 && be32(v + 20) && d6_ngot < MAX_IP6) /* IAADDR, valid */
			memcpy(d6_got[d6_ngot++], v, 16);
		i += 4 + len;
	}
}

/* An Advertise or Reply for our transaction on UDP port 546 (`m`, `n` bytes). */
static void d6_rx(const u8 *m, u32 n)
{
	if (n < 4 || (((u32)m[1] << 16) | ((u32)m[2] << 8) | m[3]) != d6_xid)
		return;
	u8 type = m[0];
	if (!(d6_state == 1 && type == D_ADVERTISE) && !(d6_state == 2 && type == D_REPLY))
		return;
	const u8 *sid = NULL, *ia = NULL;
	u32 sidlen = 0, ialen = 0;
	int cid_ok = 0, bad_status = 0;
	for (u32 i = 4; i + 4 <= n;) {
		u32 code = be16(m + i), len = be16(m + i + 2);
		if (i + 4 + len > n)
			return;
		const u8 *v = m + i + 4;
		if (code == 1)
			cid_ok = len == 10 && be16(v) == 3 && be16(v + 2) == 1 && !memcmp(v + 4, dev6->mac, 6);
		else if (code == 2 && len <= MAX_SID)
			sid = v, sidlen = len;
		else if (code == 3 && !ia && len >= 12 && len <= MAX_IA)
			ia = v, ialen = len;
		else if (code == 13 && len >= 2 && be16(v))
			bad_status = 1;
		i += 4 + len;
	}
	if (!cid_ok || !sid || !ia || bad_status)
		return;
	d6_take_ia(ia, ialen);
	if (!d6_ngot)
		return;
	if (type == D_ADVERTISE) {
		memcpy(d6_sid, sid, sidlen);
		d6_sidlen = sidlen;
		memcpy(d6_ia, ia, ialen);
		d6_ialen = ialen;
		d6_state = 2;
	} else if (sidlen == d6_sidlen && !memcmp(sid, d6_sid, sidlen)) {
		d6_state = 3;
	}
}

static void d6_wait(int from, u64 t)
{
	u64 t0 = ticks;
	while (d6_state == from && ticks - t0 < t)
		net_service(dev6);
}

static void d6_run(void)
{
	for (u32 try = 0; try < 4 && d6_state != 3; try++) {
		d6_xid = (0x360000u + try * 0x100u + dev6->mac[5]) & 0xffffff;
		d6_state = 1;
		d6_send(D_SOLICIT);
		d6_wait(1, 18 + 18 * try);
		if (d6_state != 2)
			continue;
		d6_xid ^= 0x800000;
		d6_send(D_REQUEST);
		d6_wait(2, 18 + 18 * try);
	}
	if (d6_state != 3) {
		d6_state = 0;
		kprintf("probe: dhcp6 failed\n");
		return;
	}
	d6_state = 0;
	for (u32 i = 0; i < d6_ngot; i++)
		net6_add_addr(d6_got[i]);
}

/* ---------------- ping6 (user data) ---------------- */

static u8 nd_want[16]; /* the neighbour asked for, then the echo's destination */
static u8 nd_mac[6];
static int nd_state;   /* 1 asking, 2 answered */
static int echo_state; /* 1 waiting, 2 answered */
#define ECHO_ID 0x5052

/* A solicitation for `target` from the link-local address (always eth0's own). */
static void send_ns(const u8 *target)
{
	u8 dst[16] = {0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
	memcpy(dst + 13, target + 13, 3);
	u8 *m = frame6 + 54;
	memset(m, 0, 32);
	m[0] = T_NS;
	memcpy(m + 8, target, 16);
	m[24] = 1;
	m[25] = 1;
	memcpy(m + 26, dev6->mac, 6);
	send6(NULL, ll6, dst, NH_ICMP6, 255, 32, 2);
}

static void wait_state(volatile int *st, int from, u64 t)
{
	u64 t0 = ticks;
	while (*st == from && ticks - t0 < t)
		net_service(dev6);
}

/* `ping6 <src>|self <dst>`: resolves dst's MAC (from the link-local address), sends up to
 * three echo requests from src (any address: the host's anti-spoofing is what is tested)
 * and prints `probe: ping6 <dst> from <src> reply|no-reply|no-neighbour`. */
void net6_ping(const char *s, u32 n)
{
	u32 k = 0;
	while (k < n && s[k] != ' ' && s[k] != '\t')
		k++;
	u32 d0 = k;
	while (d0 < n && (s[d0] == ' ' || s[d0] == '\t'))
		d0++;
	u8 src[16], dst[16];
	int self = k == 4 && !memcmp(s, "self", 4);
	if (!dev6 || (self && !naddr6) || (!self && !parse_ip6(s, k, src)) || !parse_ip6(s + d0, n - d0, dst)) {
		kprintf("probe: user-data: bad ping6 command\n");
		return;
	}
	if (self)
		memcpy(src, addr6[0], 16);
	char a[40], b[40];
	fmt_ip6(dst, a);
	fmt_ip6(src, b);
	memcpy(nd_want, dst, 16);
	nd_state = 1;
	for (u32 t = 0; t < 3 && nd_state == 1; t++) {
		send_ns(dst);
		wait_state(&nd_state, 1, 18);
	}
	if (nd_state != 2) {
		nd_state = 0;
		kprintf("probe: ping6 %s from %s no-neighbour\n", a, b);
		return;
	}
	nd_state = 0;
	echo_state = 1;
	for (u16 seq = 1; seq <= 3 && echo_state == 1; seq++) {
		u8 *m = frame6 + 54;
		memset(m, 0, 16);
		m[0] = T_ECHO_REQ;
		put16(m + 4, ECHO_ID);
		put16(m + 6, seq);
		memcpy(m + 8, "strato-6", 8);
		send6(nd_mac, src, dst, NH_ICMP6, 64, 16, 2);
		wait_state(&echo_state, 1, 18);
	}
	kprintf("probe: ping6 %s from %s %s\n", a, b, echo_state == 2 ? "reply" : "no-reply");
	echo_state = 0;
}

/* ---------------- receiving ---------------- */

static void rx_icmp6(const u8 *f, const u8 *ip, const u8 *m, u32 n)
{
	const u8 *src = ip + 8, *dst = ip + 24;
	if (n < 8 || csum6(src, dst, NH_ICMP6, m, n) != 0)
		return;
	if (m[0] == T_NS && m[1] == 0 && ip[7] == 255 && n >= 24) {
		const u8 *target = m + 8;
		if (!ours(target) || (!ours(dst) && !our_multicast(dst)))
			return;
		int from_dad = !memcmp(src, (const u8[16]){0}, 16);
		const u8 *mac = f + 6;
		for (u32 i = 24; i + 8 <= n;) { /* options: a source link-layer address wins */
			u32 len = (u32)m[i + 1] * 8;
			if (!len || i + len > n)
				return;
			if (m[i] == 1 && len == 8)
				mac = m + i + 2;
			i += len;
		}
		if (net_reply_budget != 0)
			send_na(target, src, from_dad ? NULL : mac);
	} else if (m[0] == T_RA && m[1] == 0 && ip[7] == 255 && n >= 16 && src[0] == 0xfe &&
		   (src[1] & 0xc0) == 0x80) { /* from a link-local address (RFC 4861 6.1.2) */
		if (have_router || !be16(m + 6)) /* router lifetime 0: not a default router */
			return;
		memcpy(router6, src, 16);
		have_router = 1;
		char b[40];
		kprintf("probe: ip6 router %s\n", fmt_ip6(router6, b));
	} else if (m[0] == T_NA && m[1] == 0 && ip[7] == 255 && n >= 24 && nd_state == 1 &&
		   !memcmp(m + 8, nd_want, 16)) {
		const u8 *mac = f + 6;
		for (u32 i = 24; i + 8 <= n;) { /* a target link-layer address option wins */
			u32 len = (u32)m[i + 1] * 8;
			if (!len || i + len > n)
				return;
			if (m[i] == 2 && len == 8)
				mac = m + i + 2;
			i += len;
		}
		if (mac[0] & 1)
			return;
		memcpy(nd_mac, mac, 6);
		nd_state = 2;
	} else if (m[0] == T_ECHO_REP && m[1] == 0 && n >= 8 && echo_state == 1 && !memcmp(src, nd_want, 16) &&
		   be16(m + 4) == ECHO_ID) {
		echo_state = 2;
	} else if (m[0] == T_ECHO_REQ && m[1] == 0 && ours(dst) && net_reply_budget != 0) {
		if (54 + n > sizeof(frame6))
			return;
		u8 src_copy[16], dst_copy[16], mac[6];
		memcpy(src_copy, src, 16);
		memcpy(dst_copy, dst, 16);
		memcpy(mac, f + 6, 6);
		memmove(frame6 + 54, m, n);
		frame6[54] = T_ECHO_REP;
		send6(mac, dst_copy, src_copy, NH_ICMP6, 64, n, 2);
	}
}

void net6_rx_frame(struct vdev *d, const u8 *f, u32 len)
{
	if (!net6_on || d != dev6 || len < 54)
		return;
	const u8 *ip = f + 14;
	u32 plen = be16(ip + 4);
	if ((ip[0] >> 4) != 6 || 54 + plen > len)
		return;
	const u8 *dst = ip + 24;
	if (!ours(dst) && !our_multicast(dst))
		return;
	const u8 *pl = ip + 40;
	if (ip[6] == NH_ICMP6) {
		rx_icmp6(f, ip, pl, plen);
	} else if (ip[6] == NH_UDP && d6_state && plen >= 8 && be16(pl + 2) == 546) {
		u32 ulen = be16(pl + 4);
		/* IPv6 makes the UDP checksum mandatory: 0 is no checksum, and dropped. */
		if (ulen < 8 || ulen > plen || !be16(pl + 6) || csum6(ip + 8, dst, NH_UDP, pl, ulen))
			return;
		d6_rx(pl + 8, ulen - 8);
	}
}

/* ---------------- setup ---------------- */

void net6_setup(struct vdev *d)
{
	if (!net6_on || d->netidx != 0)
		return;
	dev6 = d;
	memset(ll6, 0, 16);
	ll6[0] = 0xfe;
	ll6[1] = 0x80;
	ll6[8] = d->mac[0] ^ 2;
	ll6[9] = d->mac[1];
	ll6[10] = d->mac[2];
	ll6[11] = 0xff;
	ll6[12] = 0xfe;
	ll6[13] = d->mac[3];
	ll6[14] = d->mac[4];
	ll6[15] = d->mac[5];
	char b[40];
	kprintf("probe: ip6 link-local %s\n", fmt_ip6(ll6, b));
	send_rs();
	if (net6_dhcp)
		d6_run();
	for (u32 i = 0; i < naddr6; i++)
		kprintf("probe: ip6 %s\n", fmt_ip6(addr6[i], b));
	send_mld_report();
	/* The answer to the solicitation may still be on its way (DHCPv6 above waits too). */
	u64 t0 = ticks;
	while (!have_router && ticks - t0 < 18)
		net_service(d);
	if (!have_router)
		kprintf("probe: ip6 router none\n");
}
