/* probe guest: a minimal IPv4 responder (ARP requests, ICMP echo) on virtio-net. */
#include "probe.h"

static u16 be16(const u8 *p) { return (u16)((p[0] << 8) | p[1]); }
static u32 be32(const u8 *p) { return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | p[3]; }
static void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}
static void put32(u8 *p, u32 v)
{
	p[0] = (u8)(v >> 24);
	p[1] = (u8)(v >> 16);
	p[2] = (u8)(v >> 8);
	p[3] = (u8)v;
}

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

static int our_ip_dev(struct vdev *d) { return net_ip && d->netidx == 0; }

static u8 frame[1536] __attribute__((section(".noinit")));

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

void net_setup(struct vdev *d)
{
	const u8 *m = d->mac;
	kprintf("probe: net eth%d mac %02x:%02x:%02x:%02x:%02x:%02x\n", d->netidx, m[0], m[1], m[2], m[3],
		m[4], m[5]);
	if (our_ip_dev(d)) {
		kprintf("probe: ip %u.%u.%u.%u/%u\n", net_ip >> 24, (net_ip >> 16) & 255, (net_ip >> 8) & 255,
			net_ip & 255, net_prefix);
		static const u8 bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		static const u8 zero[6] = {0, 0, 0, 0, 0, 0};
		send_arp(d, 1, bcast, zero, net_ip); /* gratuitous ARP */
	}
}

static void rx_arp(struct vdev *d, const u8 *p, u32 len)
{
	if (len < 42 || be16(p + 14) != 1 || be16(p + 16) != 0x0800 || p[18] != 6 || p[19] != 4)
		return;
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
	if (!our_ip_dev(d) || len < 14)
		return;
	u16 et = be16(p + 12);
	if (et == 0x0806)
		rx_arp(d, p, len);
	else if (et == 0x0800)
		rx_ipv4(d, p, len);
}
