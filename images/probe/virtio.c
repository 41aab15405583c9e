/* probe guest: virtio-mmio (v2, modern) transport and the blk / rng drivers. */
#include "probe.h"

void disk_writes(const char *name);
void user_data_found(const char *data, u32 size, u32 stored);
void net_service(struct vdev *d);
void net_setup(struct vdev *d);

#define VIRTIO_MAGIC 0x74726976
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVID 0x008
#define R_DEVFEAT 0x010
#define R_DEVFEATSEL 0x014
#define R_DRVFEAT 0x020
#define R_DRVFEATSEL 0x024
#define R_QSEL 0x030
#define R_QNUMMAX 0x034
#define R_QNUM 0x038
#define R_QREADY 0x044
#define R_QNOTIFY 0x050
#define R_ISR 0x060
#define R_IACK 0x064
#define R_STATUS 0x070
#define R_QDESCLO 0x080
#define R_QDESCHI 0x084
#define R_QDRVLO 0x090
#define R_QDRVHI 0x094
#define R_QDEVLO 0x0a0
#define R_QDEVHI 0x0a4
#define R_CFGGEN 0x0fc
#define R_CONFIG 0x100

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 128

#define F_VERSION_1 (1UL << 32)
#define BLK_F_FLUSH (1UL << 9)
#define NET_F_MAC (1UL << 5)

#define ID_NET 1
#define ID_BLK 2
#define ID_RNG 4

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_ST_TIMEOUT 0x100

#define INT_CONFIG 2 /* InterruptStatus: configuration change */

#define QSIZE_MAX 16
#define BLK_CHUNK 0x20000 /* 128 KiB per read request */

/* offsets inside a device's fixed area */
#define A_QUEUE(q) ((u64)(q) * 0x1000) /* desc +0, avail +0x400, used +0x800 */
#define A_BLKHDR 0x2000
#define A_BLKSTATUS 0x2010
#define A_SECT_W 0x3000
#define A_SECT_R 0x3200
#define A_SECT_HDR 0x3400
#define A_RNG 0x3600

struct vq_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
struct vq_avail {
	u16 flags;
	u16 idx;
	u16 ring[];
};
struct vq_used_elem {
	u32 id;
	u32 len;
};
struct vq_used {
	u16 flags;
	u16 idx;
	struct vq_used_elem ring[];
};
#define D_NEXT 1
#define D_WRITE 2

static inline u32 rd(struct vdev *d, u32 off) { return mmio_r32(d->base + off); }
static inline void wr(struct vdev *d, u32 off, u32 v) { mmio_w32(d->base + off, v); }

static const char *type_name(u32 id, char *buf)
{
	switch (id) {
	case 0:
		return "none";
	case ID_BLK:
		return "blk";
	case ID_NET:
		return "net";
	case ID_RNG:
		return "rng";
	}
	/* unknown(<id>) */
	char t[12];
	u32 n = 0, i = 0;
	do {
		t[n++] = (char)('0' + id % 10);
		id /= 10;
	} while (id && n < 10);
	const char *p = "unknown(";
	while (*p)
		buf[i++] = *p++;
	while (n)
		buf[i++] = t[--n];
	buf[i++] = ')';
	buf[i] = 0;
	return buf;
}

static u32 version[MAX_DEVS];

void virtio_probe_all(void)
{
	u32 nblk = 0, nnet = 0;
	for (u32 i = 0; i < ndevs; i++) {
		struct vdev *d = &devs[i];
		char tb[24];
		d->id = 0;
		if (d->base && d->base + 0x200 <= 0x100000000UL && rd(d, R_MAGIC) == VIRTIO_MAGIC) {
			version[i] = rd(d, R_VERSION);
			d->id = rd(d, R_DEVID);
		}
		if (d->id == ID_BLK) {
			u32 k = nblk++;
			d->name[0] = 'v';
			d->name[1] = 'd';
			if (k < 26) {
				d->name[2] = (char)('a' + k);
				d->name[3] = 0;
			} else {
				d->name[2] = (char)('a' + k / 26 - 1);
				d->name[3] = (char)('a' + k % 26);
				d->name[4] = 0;
			}
		} else if (d->id == ID_NET) {
			d->netidx = (int)nnet++;
		}
		kprintf("probe: virtio %u 0x%lx irq %u type %s\n", i, d->base, d->irq, type_name(d->id, tb));
	}
}

/* ---------------- transport ---------------- */

static int dev_begin(struct vdev *d, u64 want)
{
	wr(d, R_STATUS, 0);
	for (int i = 0; i < 1000 && rd(d, R_STATUS); i++)
		;
	wr(d, R_STATUS, S_ACK);
	wr(d, R_STATUS, S_ACK | S_DRIVER);
	wr(d, R_DEVFEATSEL, 0);
	u64 f = rd(d, R_DEVFEAT);
	wr(d, R_DEVFEATSEL, 1);
	f |= (u64)rd(d, R_DEVFEAT) << 32;
	if (!(f & F_VERSION_1)) {
		kprintf("probe: virtio %u no VERSION_1\n", d->index);
		goto fail;
	}
	f &= want | F_VERSION_1;
	wr(d, R_DRVFEATSEL, 0);
	wr(d, R_DRVFEAT, (u32)f);
	wr(d, R_DRVFEATSEL, 1);
	wr(d, R_DRVFEAT, (u32)(f >> 32));
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	if (!(rd(d, R_STATUS) & S_FEATURES_OK)) {
		kprintf("probe: virtio %u features rejected\n", d->index);
		goto fail;
	}
	d->features = f;
	return 1;
fail:
	wr(d, R_STATUS, rd(d, R_STATUS) | S_FAILED);
	return 0;
}

static int vq_setup(struct vdev *d, u32 qi)
{
	struct vq *q = &d->q[qi];
	wr(d, R_QSEL, qi);
	if (rd(d, R_QREADY)) {
		kprintf("probe: virtio %u queue %u already live\n", d->index, qi);
		return 0;
	}
	u32 max = rd(d, R_QNUMMAX);
	if (!max) {
		kprintf("probe: virtio %u queue %u missing\n", d->index, qi);
		return 0;
	}
	u32 n = QSIZE_MAX;
	while (n > max)
		n >>= 1;
	u64 a = d->mem + A_QUEUE(qi);
	q->desc = (volatile struct vq_desc *)a;
	q->avail = (volatile struct vq_avail *)(a + 0x400);
	q->used = (volatile struct vq_used *)(a + 0x800);
	q->size = (u16)n;
	q->last_used = 0;
	q->avail_idx = 0;
	q->qidx = (u16)qi;
	q->avail->flags = 0;
	q->avail->idx = 0;
	q->used->flags = 0;
	q->used->idx = 0;
	wr(d, R_QNUM, n);
	wr(d, R_QDESCLO, (u32)a);
	wr(d, R_QDESCHI, 0);
	wr(d, R_QDRVLO, (u32)(a + 0x400));
	wr(d, R_QDRVHI, 0);
	wr(d, R_QDEVLO, (u32)(a + 0x800));
	wr(d, R_QDEVHI, 0);
	wr(d, R_QREADY, 1);
	return 1;
}

static void dev_fail(struct vdev *d)
{
	wr(d, R_STATUS, rd(d, R_STATUS) | S_FAILED);
	kprintf("probe: virtio %u init failed\n", d->index);
}

static void dev_ready(struct vdev *d)
{
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	d->ok = 1;
}

static void vq_push(struct vq *q, u16 head)
{
	q->avail->ring[q->avail_idx & (q->size - 1)] = head;
	barrier();
	q->avail_idx++;
	q->avail->idx = q->avail_idx;
	barrier();
}

static void vq_notify(struct vdev *d, u32 qi) { wr(d, R_QNOTIFY, qi); }

/* Polls the used ring (bounded: ~10 s of PIT ticks). Returns the used id or -1. */
static int vq_wait(struct vq *q, u32 *len)
{
	u64 t0 = ticks;
	for (u64 n = 0; q->used->idx == q->last_used; n++) {
		if (ticks - t0 > 182 || n > (1UL << 32))
			return -1;
	}
	barrier();
	volatile struct vq_used_elem *e = &q->used->ring[q->last_used & (q->size - 1)];
	q->last_used++;
	*len = e->len;
	return (int)e->id;
}

static u32 cfg_r32(struct vdev *d, u32 off) { return rd(d, R_CONFIG + off); }

/* ---------------- blk ---------------- */

int blk_rw(struct vdev *d, u32 type, u64 lba, u64 buf, u32 len)
{
	struct vq *q = &d->q[0];
	volatile u32 *hdr = (volatile u32 *)(d->mem + A_BLKHDR);
	volatile u8 *status = (volatile u8 *)(d->mem + A_BLKSTATUS);
	u32 ulen;
	if (!d->ok)
		return BLK_ST_TIMEOUT;
	hdr[0] = type;
	hdr[1] = 0;
	hdr[2] = (u32)lba;
	hdr[3] = (u32)(lba >> 32);
	*status = 0xff;
	q->desc[0].addr = (u64)hdr;
	q->desc[0].len = 16;
	q->desc[0].flags = D_NEXT;
	q->desc[0].next = len ? 1 : 2;
	q->desc[1].addr = buf;
	q->desc[1].len = len;
	q->desc[1].flags = D_NEXT | (type == BLK_T_IN ? D_WRITE : 0);
	q->desc[1].next = 2;
	q->desc[2].addr = (u64)status;
	q->desc[2].len = 1;
	q->desc[2].flags = D_WRITE;
	q->desc[2].next = 0;
	vq_push(q, 0);
	vq_notify(d, 0);
	if (vq_wait(q, &ulen) < 0) {
		d->ok = 0; /* descriptors may still be in flight: stop using the device */
		return BLK_ST_TIMEOUT;
	}
	barrier();
	return *status;
}

static void disk_error(struct vdev *d, int st)
{
	if (st == BLK_ST_TIMEOUT)
		kprintf("probe: disk %s error timeout\n", d->name);
	else
		kprintf("probe: disk %s error %u\n", d->name, (u32)st);
}

struct vdev *blk_by_name(const char *name, usize len)
{
	for (u32 i = 0; i < ndevs; i++)
		if (devs[i].id == ID_BLK && str_eq_n(name, len, devs[i].name))
			return &devs[i];
	return NULL;
}

static u64 fnv1a64_words(const u64 *p, u64 n)
{
	const u64 P = 0x100000001b3UL;
	u64 h = 0xcbf29ce484222325UL, i = 0;
	for (; i + 8 <= n; i += 8) {
		h ^= p[i];
		h *= P;
		h ^= p[i + 1];
		h *= P;
		h ^= p[i + 2];
		h *= P;
		h ^= p[i + 3];
		h *= P;
		h ^= p[i + 4];
		h *= P;
		h ^= p[i + 5];
		h *= P;
		h ^= p[i + 6];
		h *= P;
		h ^= p[i + 7];
		h *= P;
	}
	for (; i < n; i++) {
		h ^= p[i];
		h *= P;
	}
	return h;
}

/* The disk named `disk` with the marker sector for `text` built in its write buffer; NULL
 * (after saying so) when there is no such disk. */
static struct vdev *marker_sector(const char *disk, usize disklen, u64 lba, const char *text,
				  usize textlen)
{
	static const char tag[] = "STRATO-MARKER ";
	struct vdev *d = blk_by_name(disk, disklen);
	if (!d || !d->ok) {
		kprintf("probe: marker %.*s %lu no-such-disk\n", (int)disklen, disk, lba);
		return 0;
	}
	u8 *w = (u8 *)(d->mem + A_SECT_W);
	memset(w, 0, 512);
	memcpy(w, tag, 14);
	if (textlen > 512 - 14)
		textlen = 512 - 14;
	memcpy(w + 14, text, textlen);
	return d;
}

int do_marker(const char *disk, usize disklen, u64 lba, const char *text, usize textlen)
{
	struct vdev *d = marker_sector(disk, disklen, lba, text, textlen);
	if (!d)
		return -1;
	u8 *w = (u8 *)(d->mem + A_SECT_W), *r = (u8 *)(d->mem + A_SECT_R);
	int st = blk_rw(d, BLK_T_OUT, lba, (u64)w, 512);
	if (!st && (d->features & BLK_F_FLUSH))
		st = blk_rw(d, BLK_T_FLUSH, 0, 0, 0);
	if (!st) {
		memset(r, 0xa5, 512);
		st = blk_rw(d, BLK_T_IN, lba, (u64)r, 512);
	}
	if (st)
		disk_error(d, st);
	int ok = !st && memcmp(w, r, 512) == 0;
	kprintf("probe: marker %s %lu %s\n", d->name, lba, ok ? "ok" : "mismatch");
	return ok ? 0 : -1;
}

/* Whether sector lba of the disk holds the marker `text` (as do_marker writes it): 1 yes,
 * 0 no, -1 no such disk or the read failed. Prints `probe: marker <vdX> <lba> found|absent`. */
int has_marker(const char *disk, usize disklen, u64 lba, const char *text, usize textlen)
{
	struct vdev *d = marker_sector(disk, disklen, lba, text, textlen);
	if (!d)
		return -1;
	u8 *w = (u8 *)(d->mem + A_SECT_W), *r = (u8 *)(d->mem + A_SECT_R);
	memset(r, 0xa5, 512);
	int st = blk_rw(d, BLK_T_IN, lba, (u64)r, 512);
	if (st) {
		disk_error(d, st);
		return -1;
	}
	int found = memcmp(w, r, 512) == 0;
	kprintf("probe: marker %s %lu %s\n", d->name, lba, found ? "found" : "absent");
	return found;
}

/* Capacity in sectors, read with the generation check (read ConfigGeneration, the field,
 * ConfigGeneration again; retry while they differ). *gen gets the generation it belongs to. */
static u64 blk_capacity(struct vdev *d, u32 *gen)
{
	u32 lo = 0, hi = 0, g = 0;
	for (int t = 0; t < 10; t++) {
		g = rd(d, R_CFGGEN);
		lo = cfg_r32(d, 0);
		hi = cfg_r32(d, 4);
		if (rd(d, R_CFGGEN) == g)
			break;
	}
	*gen = g;
	return lo | ((u64)hi << 32);
}

/* Prints the "disk" line for d->sectors: an empty slot is never read (the monitor fails
 * every request to it); otherwise the first min(1 MiB, size) bytes are read and summed. */
static void blk_report(struct vdev *d)
{
	u64 size = d->sectors << 9;
	d->is_config = 0;
	if (!size) {
		kprintf("probe: disk %s size 0\n", d->name);
		return;
	}
	u64 n = size < BLK_BUF_SIZE ? size : BLK_BUF_SIZE;
	int st = 0;
	for (u64 off = 0; off < n && !st; off += BLK_CHUNK) {
		u32 len = (u32)(n - off < BLK_CHUNK ? n - off : BLK_CHUNK);
		st = blk_rw(d, BLK_T_IN, off >> 9, BLK_BUF + off, len);
	}
	if (st) {
		disk_error(d, st);
		kprintf("probe: disk %s size %lu\n", d->name, size);
		return;
	}
	const u8 *b = (const u8 *)BLK_BUF;
	d->is_config = b[156] == 'V' && memcmp(b, "config-2", 9) == 0;
	kprintf("probe: disk %s size %lu sum %016lx\n", d->name, size,
		fnv1a64_words((const u64 *)BLK_BUF, n / 8));
}

static void blk_init(struct vdev *d)
{
	if (!dev_begin(d, BLK_F_FLUSH) || !vq_setup(d, 0)) {
		dev_fail(d);
		return;
	}
	dev_ready(d);
	/* after DRIVER_OK: a later attach or detach raises a configuration change interrupt
	 * and bumps the generation recorded here */
	d->sectors = blk_capacity(d, &d->cfg_gen);
	blk_report(d);
	disk_writes(d->name);
}

/* Hot attach / detach: called from the idle loop when InterruptStatus had the
 * configuration change bit or ConfigGeneration moved. Prints the "disk" line again when
 * the capacity changed. */
static void blk_config_changed(struct vdev *d)
{
	u32 gen;
	u64 sectors = blk_capacity(d, &gen);
	d->cfg_gen = gen;
	if (sectors == d->sectors)
		return;
	d->sectors = sectors;
	blk_report(d);
}

/* ---------------- rng ---------------- */

static void rng_init(struct vdev *d)
{
	if (!dev_begin(d, 0) || !vq_setup(d, 0)) {
		dev_fail(d);
		return;
	}
	dev_ready(d);
	struct vq *q = &d->q[0];
	q->desc[0].addr = d->mem + A_RNG;
	q->desc[0].len = 16;
	q->desc[0].flags = D_WRITE;
	q->desc[0].next = 0;
	vq_push(q, 0);
	vq_notify(d, 0);
	u32 len = 0;
	if (vq_wait(q, &len) < 0)
		kprintf("probe: rng timeout\n");
	else if (len == 16)
		kprintf("probe: rng ok\n");
	else
		kprintf("probe: rng short %u\n", len);
}

/* ---------------- net transport part ---------------- */

#define NET_BUF 2048
#define A_TXBUF 0x4000
#define A_RXBUF 0xc000

static void net_init(struct vdev *d)
{
	if (!dev_begin(d, NET_F_MAC) || !vq_setup(d, 0) || !vq_setup(d, 1)) {
		dev_fail(d);
		return;
	}
	dev_ready(d);
	if (d->features & NET_F_MAC) {
		for (int i = 0; i < 6; i++)
			d->mac[i] = mmio_r8(d->base + R_CONFIG + (u32)i);
	} else {
		static const u8 def[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x00};
		memcpy(d->mac, def, 6);
		d->mac[5] = (u8)d->index;
	}
	struct vq *q = &d->q[0];
	for (u16 i = 0; i < q->size; i++) {
		q->desc[i].addr = d->mem + A_RXBUF + (u64)i * NET_BUF;
		q->desc[i].len = NET_BUF;
		q->desc[i].flags = D_WRITE;
		q->desc[i].next = 0;
		q->avail->ring[i] = i;
	}
	barrier();
	q->avail_idx = q->size;
	q->avail->idx = q->avail_idx;
	barrier();
	vq_notify(d, 0);
	d->tx_busy = 0;
	net_setup(d);
}

static void tx_reclaim(struct vdev *d)
{
	struct vq *q = &d->q[1];
	for (int n = 0; n < 64 && q->used->idx != q->last_used; n++) {
		barrier();
		u32 id = q->used->ring[q->last_used & (q->size - 1)].id;
		q->last_used++;
		if (id < 32)
			d->tx_busy &= ~(1u << id);
	}
}

int net_tx(struct vdev *d, const u8 *frame, u32 len)
{
	struct vq *q = &d->q[1];
	if (!d->ok || len > NET_BUF - 12)
		return -1;
	tx_reclaim(d);
	u32 id;
	for (id = 0; id < q->size; id++)
		if (!(d->tx_busy & (1u << id)))
			break;
	if (id == q->size)
		return -1;
	u8 *b = (u8 *)(d->mem + A_TXBUF + (u64)id * NET_BUF);
	memset(b, 0, 12);
	memcpy(b + 12, frame, len);
	if (len < 60) {
		memset(b + 12 + len, 0, 60 - len);
		len = 60;
	}
	d->tx_busy |= 1u << id;
	q->desc[id].addr = (u64)b;
	q->desc[id].len = 12 + len;
	q->desc[id].flags = 0;
	q->desc[id].next = 0;
	vq_push(q, (u16)id);
	vq_notify(d, 1);
	return 0;
}

void net_service(struct vdev *d)
{
	struct vq *q = &d->q[0];
	int n = 0;
	while (n < 64 && q->used->idx != q->last_used) {
		barrier();
		volatile struct vq_used_elem *e = &q->used->ring[q->last_used & (q->size - 1)];
		u32 id = e->id, len = e->len;
		q->last_used++;
		n++;
		if (id >= q->size)
			continue;
		u8 *b = (u8 *)(d->mem + A_RXBUF + (u64)id * NET_BUF);
		if (len > 12 && len <= NET_BUF)
			net_rx_frame(d, b + 12, len - 12);
		q->desc[id].addr = (u64)b;
		q->desc[id].len = NET_BUF;
		q->desc[id].flags = D_WRITE;
		q->avail->ring[q->avail_idx & (q->size - 1)] = (u16)id;
		barrier();
		q->avail_idx++;
	}
	if (n) {
		q->avail->idx = q->avail_idx;
		barrier();
		vq_notify(d, 0);
	}
	tx_reclaim(d);
}

/* ---------------- all devices ---------------- */

void virtio_init_all(void)
{
	for (u32 i = 0; i < ndevs; i++) {
		struct vdev *d = &devs[i];
		if (d->id != ID_BLK && d->id != ID_NET && d->id != ID_RNG)
			continue;
		if (version[i] != 2) {
			kprintf("probe: virtio %u version %u not supported\n", i, version[i]);
			continue;
		}
		switch (d->id) {
		case ID_BLK:
			blk_init(d);
			break;
		case ID_NET:
			net_init(d);
			break;
		case ID_RNG:
			rng_init(d);
			break;
		}
	}
}

/* irqs: bitmap of the 8259 lines that fired since the last call (bit 0: PIT tick). Every
 * call (every PIT tick at least) looks at the net RX rings, so a lost interrupt costs one
 * tick at most; the InterruptStatus register (an exit to the monitor) is read only when
 * there is a reason. On each tick the probe also compares every blk device's
 * ConfigGeneration with the last one it saw, so a lost configuration change interrupt is
 * noticed within a tick too. Runs in the idle loop with interrupts on, never in a handler:
 * a capacity change means up to 1 MiB of polled disk reads. */
void virtio_service(u32 irqs)
{
	for (u32 i = 0; i < ndevs; i++) {
		struct vdev *d = &devs[i];
		if (!d->ok)
			continue;
		int fired = d->irq >= 16 || (irqs & (1u << d->irq));
		int pending = d->id == ID_NET && d->q[0].used->idx != d->q[0].last_used;
		int changed = d->id == ID_BLK && (irqs & 1) && rd(d, R_CFGGEN) != d->cfg_gen;
		if (pending || fired || changed) {
			u32 isr = rd(d, R_ISR);
			if (isr)
				wr(d, R_IACK, isr);
			if (isr & INT_CONFIG)
				changed = 1;
		}
		if (d->id == ID_BLK && changed)
			blk_config_changed(d); /* after the ACK: a newer change raises a new interrupt */
		else if (d->id == ID_NET)
			net_service(d);
	}
}

/* ---------------- config drive ---------------- */

static u64 tar_octal(const u8 *p, u32 n)
{
	u64 v = 0;
	u32 i = 0;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
		v = (v << 3) | (u64)(p[i] - '0');
	return v;
}

static int tar_name_is(const u8 *h, const char *want)
{
	u32 i;
	for (i = 0; want[i]; i++)
		if (h[i] != (u8)want[i])
			return 0;
	return i == 100 || h[i] == 0;
}

void config_drive_run(void)
{
	for (u32 i = 0; i < ndevs; i++) {
		struct vdev *d = &devs[i];
		if (d->id != ID_BLK || !d->ok || !d->is_config)
			continue;
		kprintf("probe: config-drive %s\n", d->name);
		u8 *h = (u8 *)(d->mem + A_SECT_HDR);
		u64 lba = 0;
		for (u32 m = 0; m < 4096 && lba < d->sectors; m++) {
			int st = blk_rw(d, BLK_T_IN, lba, (u64)h, 512);
			if (st) {
				disk_error(d, st);
				return;
			}
			const u64 *hw = (const u64 *)h;
			u64 any = 0;
			for (int k = 0; k < 64; k++)
				any |= hw[k];
			if (!any || (h[124] & 0x80))
				break;
			u64 size = tar_octal(h + 124, 12);
			u8 type = h[156];
			if ((type == '0' || type == 0) &&
			    (tar_name_is(h, "user-data") || tar_name_is(h, "./user-data"))) {
				u32 stored = size > UD_MAX ? UD_MAX : (u32)size;
				u32 nsec = (stored + 511) / 512;
				if (lba + 1 + nsec > d->sectors)
					break;
				if (nsec) {
					st = blk_rw(d, BLK_T_IN, lba + 1, UD_BUF, nsec * 512);
					if (st) {
						disk_error(d, st);
						return;
					}
				}
				user_data_found((const char *)UD_BUF, (u32)(size > 0xffffffffUL ? 0xffffffffUL : size),
						stored);
				return;
			}
			lba += 1 + (size + 511) / 512;
		}
		kprintf("probe: user-data none\n");
		return;
	}
}
