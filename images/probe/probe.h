/* probe guest: shared declarations. Freestanding x86-64, general registers only. */
#ifndef PROBE_H
#define PROBE_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef unsigned long usize;

#define NULL ((void *)0)
#define barrier() __asm__ volatile("" ::: "memory")

/* ---- fixed physical memory used by the probe (never zeroed as a whole) ---- */
#define MAX_DEVS 32
#define DEV_AREA_BASE 0x200000UL /* 128 KiB per virtio device: rings + buffers */
#define DEV_AREA_SIZE 0x20000UL
#define BLK_BUF 0x600000UL       /* 1 MiB: disk read buffer (checksum) */
#define BLK_BUF_SIZE 0x100000UL
#define UD_BUF 0x700000UL        /* user-data script, 16 KiB max */
#define UD_MAX 16384
#define MEM_NEEDED 0x708000UL    /* RAM the probe needs below this address */

/* ---- port I/O ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }

/* ---- MMIO ---- */
static inline u32 mmio_r32(u64 a) { return *(volatile u32 *)a; }
static inline void mmio_w32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline u8 mmio_r8(u64 a) { return *(volatile u8 *)a; }

/* ---- network byte order (net.c, net6.c) ---- */
static inline u16 be16(const u8 *p) { return (u16)((p[0] << 8) | p[1]); }
static inline u32 be32(const u8 *p) { return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | p[3]; }
static inline void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}
static inline void put32(u8 *p, u32 v)
{
	p[0] = (u8)(v >> 24);
	p[1] = (u8)(v >> 16);
	p[2] = (u8)(v >> 8);
	p[3] = (u8)v;
}

/* ---- lib.c ---- */
void *memcpy(void *d, const void *s, usize n);
void *memset(void *d, int c, usize n);
void *memmove(void *d, const void *s, usize n);
int memcmp(const void *a, const void *b, usize n);
usize strlen(const char *s);
int str_eq_n(const char *a, usize alen, const char *b); /* a[0..alen) == NUL-terminated b */
void con_write(const char *s, usize n);
/* Line status bits (break) seen while waiting to transmit, for the receiver to report. */
extern volatile u8 uart_lsr_saved;
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses an unsigned number (decimal, or hex with 0x); returns chars consumed (0 = none). */
usize parse_u64(const char *s, usize n, u64 *out);

/* ---- main.c ---- */
extern volatile u64 ticks;
void power_off(void) __attribute__((noreturn));
int do_marker(const char *disk, usize disklen, u64 lba, const char *text, usize textlen);
int has_marker(const char *disk, usize disklen, u64 lba, const char *text, usize textlen);

/* ---- acpi.c ---- */
struct acpi_info {
	int ok;          /* RSDP, XSDT, FADT, MADT and DSDT found and checksummed */
	int hw_reduced;  /* FADT HW_REDUCED_ACPI */
	u8 sleep_space;  /* sleep control register: 0 system memory, 1 I/O */
	u64 sleep_reg;   /* 0: no ACPI power-off */
	u8 s5_type;      /* \_S5 SLP_TYP */
	u8 ged_space;    /* generic event device's event register: 0 memory, 1 I/O */
	u64 ged_reg;     /* 0: no generic event device */
	u32 ged_irq;     /* its GSI */
};
extern struct acpi_info acpi;
void acpi_init(u64 rsdp_hint); /* prints "probe: acpi ok|none|bad <table>" */
void acpi_power_off(void);     /* returns only when there is no ACPI power-off */
u32 acpi_ged_events(void);     /* reads (and takes) the pending GED events */
void smbios_init(void);        /* prints "probe: smbios <manufacturer> <product> <serial>|none" */

/* ---- virtio.c ---- */
struct vq {
	volatile struct vq_desc *desc;
	volatile struct vq_avail *avail;
	volatile struct vq_used *used;
	u16 size;
	u16 last_used;
	u16 avail_idx;
	u16 qidx;
};

struct vdev {
	u64 base;
	u32 irq;
	u32 index;
	u32 id;       /* device id, 0 = empty slot */
	int ok;       /* DRIVER_OK reached */
	u64 mem;      /* fixed physical area for rings and buffers */
	u64 features; /* negotiated */
	struct vq q[2];
	/* blk */
	char name[8];
	u64 sectors;  /* last capacity seen (and reported) */
	u32 cfg_gen;  /* ConfigGeneration that capacity belongs to */
	int is_config;
	/* net */
	int netidx;
	u8 mac[6];
	u32 tx_busy; /* bitmap of TX descriptors in flight */
};

extern struct vdev devs[MAX_DEVS];
extern u32 ndevs;

void virtio_probe_all(void);   /* fills id fields, prints the "virtio" lines */
void virtio_init_all(void);    /* initialises every device, prints disk/net/rng lines */
void virtio_service(u32 irqs); /* acks interrupts, serves net RX, blk config changes */
struct vdev *blk_by_name(const char *name, usize len);
int blk_rw(struct vdev *d, u32 type, u64 lba, u64 buf, u32 len); /* returns virtio status, 0 = ok */
void config_drive_run(void);

/* ---- net.c ---- */
extern u32 net_ip;     /* host order, 0 = none */
extern u32 net_prefix;
extern u32 net_gw;
/* ARP replies left before the guest goes silent on the network (user data
 * `net-silent-after N`); negative: no limit. */
extern int net_reply_budget;
extern int net_dhcp; /* probe.dhcp: ask DHCP for eth0's address */
void net_configured(struct vdev *d); /* print mac/ip, send gratuitous ARP */
void net_rx_frame(struct vdev *d, const u8 *frame, u32 len);
int net_tx(struct vdev *d, const u8 *frame, u32 len);
void net_service(struct vdev *d); /* virtio.c: serves the RX ring */
extern int net_noip4; /* probe.noip4: no IPv4 address on eth0 (ip= and probe.dhcp ignored) */

/* ---- net6.c ---- */
#define MAX_IP6 8
extern int net6_on;   /* IPv6 on eth0: probe.ip6=, probe.dhcp6 or probe.ipv6 */
extern int net6_dhcp; /* probe.dhcp6: ask DHCPv6 for eth0's addresses */
int parse_ip6(const char *s, u32 n, u8 out[16]); /* 1 when s[0..n) is a whole address */
void net6_add_addr(const u8 a[16]);
void net6_setup(struct vdev *d); /* eth0: link-local, RS, DHCPv6, prints the ip6 lines */
void net6_rx_frame(struct vdev *d, const u8 *frame, u32 len);
void net6_ping(const char *arg, u32 len); /* user data `ping6 <src>|self <dst>` */
void net_ping(u32 dst); /* user data `ping <dst>`: IPv4 echo from eth0's address */

#endif
