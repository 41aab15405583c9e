/* probe guest: boot info, command line, MP table, interrupts, idle loop, keyboard, console
 * input, power button, user-data script. See README.md for the console protocol. */
#include "probe.h"

#define ENTRY_PVH 1
#define ENTRY_LINUX64 2

/* ---------------- command line ---------------- */
#define CMDLINE_MAX 4096
#define MAX_WRITES 16

static char cmdline[CMDLINE_MAX] __attribute__((section(".noinit")));
static u32 cmdline_len;

struct pwrite {
	const char *disk;
	u32 disklen;
	const char *text;
	u32 textlen;
	u64 lba;
};
static struct pwrite writes[MAX_WRITES];
static u32 nwrites;
static int opt_poweroff;
static int opt_fault;

u32 net_ip, net_prefix, net_gw;
volatile u64 ticks;
static volatile u32 work;
static u64 mem_bytes;
static u64 ram_top_low; /* end of the RAM range containing 1 MiB */
static u64 rsdp_hint;   /* the RSDP's address from the boot information, 0 if none */

struct vdev devs[MAX_DEVS];
u32 ndevs;

/* ---------------- power off, reboot ---------------- */
static void __attribute__((noreturn)) i8042_reset(void)
{
	cli();
	outb(0x64, 0xfe);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* ACPI S5 when the firmware tables offer it, else the i8042 reset line (which ends a VM
 * whose monitor treats a reset as the end). */
void power_off(void)
{
	cli();
	acpi_power_off();
	i8042_reset();
}

/* ---------------- boot information ---------------- */
static void add_ram(u64 addr, u64 size, u32 type)
{
	if (type != 1)
		return;
	mem_bytes += size;
	if (addr <= 0x100000 && addr + size > 0x100000)
		ram_top_low = addr + size;
}

static void copy_cmdline(u64 pa)
{
	const char *s = (const char *)pa;
	u32 n = 0;
	if (pa && pa < 0x100000000UL)
		while (n < CMDLINE_MAX - 1 && s[n])
			n++;
	if (n)
		memcpy(cmdline, s, n);
	cmdline[n] = 0;
	cmdline_len = n;
}

static void read_boot_info(int kind, u64 info)
{
	if (kind == ENTRY_PVH) {
		const u8 *si = (const u8 *)info;
		if (*(const u32 *)si != 0x336ec578)
			return;
		copy_cmdline(*(const u64 *)(si + 24));
		rsdp_hint = *(const u64 *)(si + 32);
		if (*(const u32 *)(si + 4) >= 1) {
			const u8 *mm = (const u8 *)*(const u64 *)(si + 40);
			u32 n = *(const u32 *)(si + 48);
			if (n > 128)
				n = 128;
			for (u32 i = 0; mm && i < n; i++)
				add_ram(*(const u64 *)(mm + i * 24), *(const u64 *)(mm + i * 24 + 8),
					*(const u32 *)(mm + i * 24 + 16));
		}
	} else {
		const u8 *bp = (const u8 *)info;
		u64 cl = *(const u32 *)(bp + 0x228) | ((u64) * (const u32 *)(bp + 0xc8) << 32);
		copy_cmdline(cl);
		rsdp_hint = *(const u64 *)(bp + 0x70);
		u32 n = bp[0x1e8];
		if (n > 128)
			n = 128;
		for (u32 i = 0; i < n; i++) {
			const u8 *e = bp + 0x2d0 + i * 20;
			add_ram(*(const u64 *)e, *(const u64 *)(e + 8), *(const u32 *)(e + 16));
		}
	}
}

/* ---------------- command line parsing ---------------- */
static int starts(const char *s, u32 n, const char *p)
{
	u32 i;
	for (i = 0; p[i]; i++)
		if (i >= n || s[i] != p[i])
			return 0;
	return 1;
}

static u32 parse_ipv4(const char *s, u32 n, u32 *out)
{
	u32 ip = 0, i = 0;
	for (int part = 0; part < 4; part++) {
		u64 v;
		usize c = 0;
		if (i < n && s[i] >= '0' && s[i] <= '9')
			c = parse_u64(s + i, n - i, &v);
		if (!c || v > 255)
			return 0;
		ip = (ip << 8) | (u32)v;
		i += (u32)c;
		if (part < 3) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	*out = ip;
	return i;
}

static void parse_virtio(const char *s, u32 n)
{
	/* <size>@<base>:<irq>[:<id>] */
	u64 size, base, irq;
	usize c = parse_u64(s, n, &size);
	if (!c)
		return;
	u32 i = (u32)c;
	if (i < n && (s[i] == 'K' || s[i] == 'k' || s[i] == 'M' || s[i] == 'm' || s[i] == 'G' || s[i] == 'g'))
		i++;
	if (i >= n || s[i] != '@')
		return;
	i++;
	c = parse_u64(s + i, n - i, &base);
	if (!c)
		return;
	i += (u32)c;
	if (i >= n || s[i] != ':')
		return;
	i++;
	c = parse_u64(s + i, n - i, &irq);
	if (!c)
		return;
	if (ndevs >= MAX_DEVS)
		return;
	struct vdev *d = &devs[ndevs];
	d->base = base;
	d->irq = (u32)irq;
	d->index = ndevs;
	d->mem = DEV_AREA_BASE + ndevs * DEV_AREA_SIZE;
	ndevs++;
}

static void parse_ip(const char *s, u32 n)
{
	/* <client>:<server>:<gw>:<netmask>:<hostname>:<dev>:<autoconf> */
	const char *f[4];
	u32 fl[4], nf = 0, st = 0;
	for (u32 i = 0; i <= n && nf < 4; i++) {
		if (i == n || s[i] == ':') {
			f[nf] = s + st;
			fl[nf] = i - st;
			nf++;
			st = i + 1;
		}
	}
	u32 ip = 0, mask = 0, gw = 0;
	if (nf < 1 || !fl[0] || parse_ipv4(f[0], fl[0], &ip) != fl[0])
		return;
	if (nf >= 3 && fl[2])
		parse_ipv4(f[2], fl[2], &gw);
	if (nf >= 4 && fl[3] && parse_ipv4(f[3], fl[3], &mask) == fl[3]) {
		u32 p = 0;
		while (p < 32 && (mask & (0x80000000U >> p)))
			p++;
		net_prefix = p;
	} else {
		u32 a = ip >> 24; /* classful default */
		net_prefix = a < 128 ? 8 : a < 192 ? 16 : 24;
	}
	net_ip = ip;
	net_gw = gw;
}

static void parse_write(const char *s, u32 n)
{
	/* <disk>:<lba>:<text> */
	u32 i = 0;
	while (i < n && s[i] != ':')
		i++;
	if (i == 0 || i >= n || nwrites >= MAX_WRITES)
		return;
	u64 lba;
	usize c = parse_u64(s + i + 1, n - i - 1, &lba);
	if (!c || i + 1 + c >= n || s[i + 1 + c] != ':')
		return;
	struct pwrite *w = &writes[nwrites++];
	w->disk = s;
	w->disklen = i;
	w->lba = lba;
	w->text = s + i + 2 + c;
	w->textlen = n - (i + 2 + (u32)c);
}

/* probe.ip6=<addr>[/<prefix>]: the prefix is not used (neighbours are asked for anyway). */
static void parse_ip6_opt(const char *s, u32 n)
{
	u32 k = 0;
	while (k < n && s[k] != '/')
		k++;
	u8 a[16];
	if (parse_ip6(s, k, a)) {
		net6_add_addr(a);
		net6_on = 1;
	}
}

static void parse_cmdline(void)
{
	u32 i = 0;
	while (i < cmdline_len) {
		while (i < cmdline_len && (cmdline[i] == ' ' || cmdline[i] == '\t' || cmdline[i] == '\n'))
			i++;
		u32 st = i;
		while (i < cmdline_len && cmdline[i] != ' ' && cmdline[i] != '\t' && cmdline[i] != '\n')
			i++;
		const char *t = cmdline + st;
		u32 n = i - st;
		if (!n)
			continue;
		if (starts(t, n, "virtio_mmio.device="))
			parse_virtio(t + 19, n - 19);
		else if (starts(t, n, "ip="))
			parse_ip(t + 3, n - 3);
		else if (n == 14 && starts(t, n, "probe.poweroff"))
			opt_poweroff = 1;
		else if (n == 11 && starts(t, n, "probe.fault"))
			opt_fault = 1;
		else if (n == 10 && starts(t, n, "probe.dhcp"))
			net_dhcp = 1;
		else if (n == 11 && starts(t, n, "probe.dhcp6"))
			net6_on = net6_dhcp = 1;
		else if (n == 10 && starts(t, n, "probe.ipv6"))
			net6_on = 1;
		else if (n == 11 && starts(t, n, "probe.noip4"))
			net_noip4 = 1;
		else if (starts(t, n, "probe.ip6="))
			parse_ip6_opt(t + 10, n - 10);
		else if (starts(t, n, "probe.write="))
			parse_write(t + 12, n - 12);
	}
}

/* ---------------- MP table ---------------- */
/* What the MP table says about the IOAPIC (used when there is no 8259). */
static u64 ioapic_base = 0xfec00000UL;
static u8 isa_pin[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Walks the MP table: returns the processor entries, records the first IOAPIC's address
 * and the IOAPIC pin of each ISA IRQ (I/O interrupt entries of type INT). */
static u32 read_mptable(void)
{
	static const u64 ranges[2][2] = {{0x9fc00, 0xa0000}, {0xf0000, 0x100000}};
	for (int r = 0; r < 2; r++) {
		for (u64 a = ranges[r][0]; a + 16 <= ranges[r][1]; a += 16) {
			if (*(const u32 *)a != 0x5f504d5f) /* "_MP_" */
				continue;
			u64 cfg = *(const u32 *)(a + 4);
			if (!cfg || cfg + 44 > 0x100000000UL || *(const u32 *)cfg != 0x504d4350) /* "PCMP" */
				return 0;
			/* walk by the base table length, as Linux does (some tables leave the
			 * entry count at 0) */
			u32 len = *(const u16 *)(cfg + 4);
			u32 off = 44, cpus = 0, ioapics = 0;
			for (u32 e = 0; e < 4096 && off + 8 <= len; e++) {
				const u8 *ent = (const u8 *)(cfg + off);
				u8 type = ent[0];
				if (type == 0) {
					cpus++;
					off += 20;
				} else if (type <= 4) {
					if (type == 2 && !ioapics++ && (ent[3] & 1))
						ioapic_base = *(const u32 *)(ent + 4);
					/* I/O interrupt, type INT, from an ISA IRQ (the only bus strato lists) */
					if (type == 3 && ent[1] == 0 && ent[5] < 16 && ent[7] < 24)
						isa_pin[ent[5]] = ent[7];
					off += 8;
				} else {
					break;
				}
			}
			return cpus;
		}
	}
	return 0;
}

/* ---------------- interrupts ---------------- */
struct idt_entry {
	u16 off0;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off1;
	u32 off2;
	u32 zero;
};
static struct idt_entry idt[256] __attribute__((aligned(16), section(".data.idt")));
extern char isr_stubs[], isr_spurious[];

static void set_gate(u32 vec, u64 addr)
{
	idt[vec].off0 = (u16)addr;
	idt[vec].sel = 0x10;
	idt[vec].ist = 0;
	idt[vec].type = 0x8e; /* present, DPL0, 64-bit interrupt gate */
	idt[vec].off1 = (u16)(addr >> 16);
	idt[vec].off2 = (u32)(addr >> 32);
	idt[vec].zero = 0;
}

static void idt_init(void)
{
	for (u32 v = 0; v < 56; v++)
		set_gate(v, (u64)isr_stubs + 16 * v);
	set_gate(0xff, (u64)isr_spurious);
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) p = {sizeof(idt) - 1, (u64)idt};
	__asm__ volatile("lidt %0" ::"m"(p));
}

static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return lo | ((u64)hi << 32);
}
static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

static void pic_init(u16 mask)
{
	outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 */
	outb(0xa0, 0x11);
	outb(0x21, 0x20); /* ICW2: vectors 0x20.. */
	outb(0xa1, 0x28);
	outb(0x21, 0x04); /* ICW3: slave on IRQ2 */
	outb(0xa1, 0x02);
	outb(0x21, 0x01); /* ICW4: 8086 mode */
	outb(0xa1, 0x01);
	outb(0x21, (u8)~mask);
	outb(0xa1, (u8)~(mask >> 8));
}

static void pit_init(void)
{
	/* channel 0, lobyte/hibyte, mode 2, divisor 65536: ~18.2 Hz (the slowest it goes) */
	outb(0x43, 0x34);
	outb(0x40, 0);
	outb(0x40, 0);
}

/* ---------------- local APIC ---------------- */
static int x2apic;
static u64 lapic_base = 0xfee00000UL;

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_LVTT 0x320
#define LAPIC_LVT0 0x350
#define LAPIC_LVT1 0x360
#define LAPIC_TMICT 0x380
#define LAPIC_TDCR 0x3e0
#define LVT_MASKED 0x10000
#define LVT_PERIODIC 0x20000
/* KVM's local APIC timer counts at 1 GHz (its APIC bus cycle is 1 ns): with divide-by-1,
 * this many counts is the PIT's period at divisor 65536 (54.9 ms, 18.2 Hz). */
#define LAPIC_TICK_COUNT 54925000u

static u32 lapic_r(u32 reg)
{
	return x2apic ? (u32)rdmsr(0x800 + (reg >> 4)) : mmio_r32(lapic_base + reg);
}
static void lapic_w(u32 reg, u32 v)
{
	if (x2apic)
		wrmsr(0x800 + (reg >> 4), v);
	else
		mmio_w32(lapic_base + reg, v);
}

static int have_lapic(void)
{
	u32 a, b, c, d;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
	return (d >> 9) & 1;
}

/* Finds the local APIC in whatever mode it is in (enabling it in xAPIC mode if it is off). */
static void lapic_find(void)
{
	u64 base = rdmsr(0x1b);
	if (!(base & (1 << 11))) {
		base |= 1 << 11;
		wrmsr(0x1b, base);
	}
	x2apic = (base >> 10) & 1;
	lapic_base = base & 0xfffff000UL;
}

/* Make sure the local APIC passes the 8259's interrupts through (LVT0 = ExtINT). */
static void lapic_passthrough(void)
{
	if (!have_lapic())
		return;
	if (!(rdmsr(0x1b) & (1 << 11)))
		return; /* APIC disabled: the PIC is wired straight to the CPU */
	lapic_find();
	if ((lapic_r(LAPIC_LVT0) & 0x10700) == 0x700)
		return;
	lapic_w(LAPIC_SVR, 0x1ff);
	lapic_w(LAPIC_LVT0, 0x700);
	lapic_w(LAPIC_LVT1, 0x400);
}

/* ---------------- IOAPIC (no 8259) ---------------- */
/* Set when the platform has no 8259 (a split irqchip): device IRQs come through the IOAPIC
 * and the tick from the local APIC timer, on the same vectors as with the PIC. */
static int use_ioapic;

/* Like Linux's probe_8259A: an 8259's mask register reads back what was written. */
static int pic_present(void)
{
	outb(0xa1, 0xff);
	outb(0x21, 0xfb);
	return inb(0x21) == 0xfb;
}

static void ioapic_w(u32 reg, u32 v)
{
	mmio_w32(ioapic_base, reg);
	mmio_w32(ioapic_base + 0x10, v);
}

/* ISA IRQ or GSI `irq` to vector 0x20 + irq on this CPU: fixed, physical, active high, edge-
 * or level-triggered. */
static void ioapic_route(u32 irq, u32 apic_id, int level)
{
	u32 pin = irq < 16 ? isa_pin[irq] : irq;
	ioapic_w(0x10 + 2 * pin + 1, apic_id << 24);
	ioapic_w(0x10 + 2 * pin, (0x20 + irq) | (level ? 1u << 15 : 0));
}

/* Routes the IRQs in `mask` (bit n = IRQ n) to this CPU and starts the tick. */
static void apic_init(u32 mask)
{
	lapic_find();
	lapic_w(LAPIC_SVR, 0x1ff); /* software-enabled, spurious vector 0xff */
	lapic_w(LAPIC_TPR, 0);
	lapic_w(LAPIC_LVT0, LVT_MASKED); /* no 8259 behind LINT0 */
	lapic_w(LAPIC_LVT1, 0x400);      /* NMI */
	u32 id = lapic_r(LAPIC_ID);
	if (!x2apic)
		id >>= 24;
	/* COM1 level-triggered: its check then needs the IOAPIC's Remote IRR cleared by the
	 * local APIC's EOI before the second interrupt can come. */
	for (u32 irq = 1; irq < 24; irq++)
		if (mask & (1u << irq))
			ioapic_route(irq, id, irq == 4);
	lapic_w(LAPIC_TDCR, 0xb); /* divide by 1 */
	lapic_w(LAPIC_LVTT, LVT_PERIODIC | 0x20);
	lapic_w(LAPIC_TMICT, LAPIC_TICK_COUNT);
}

/* Masks (1) or unmasks (0) the tick. */
static void tick_mask(int masked)
{
	if (use_ioapic) {
		u32 v = lapic_r(LAPIC_LVTT);
		lapic_w(LAPIC_LVTT, masked ? v | LVT_MASKED : v & ~LVT_MASKED);
	} else {
		u8 m = inb(0x21);
		outb(0x21, masked ? m | 1 : m & ~1);
	}
}

static void pic_eoi(u32 irq)
{
	if (irq >= 8)
		outb(0xa0, 0x20);
	outb(0x20, 0x20);
}

void isr_dispatch(u64 vec, u64 *frame)
{
	if (vec < 32) {
		kprintf("probe: exception %u rip 0x%lx\n", (u32)vec, frame[11]);
		power_off();
	}
	u32 irq = (u32)vec - 0x20;
	if (use_ioapic) {
		if (irq == 0)
			ticks++;
		work |= 1u << irq;
		lapic_w(LAPIC_EOI, 0);
		return;
	}
	if (irq == 7 || irq == 15) { /* spurious? check the in-service register */
		outb(irq == 7 ? 0x20 : 0xa0, 0x0b);
		if (!(inb(irq == 7 ? 0x20 : 0xa0) & 0x80)) {
			if (irq == 15)
				outb(0x20, 0x20);
			return;
		}
	}
	if (irq == 0)
		ticks++;
	work |= 1u << irq;
	pic_eoi(irq);
}

/* ---------------- serial interrupt ---------------- */
/* COM1 raises IRQ 4 as soon as its transmitter-empty interrupt is enabled (its transmitter is
 * always empty): a round trip through whatever interrupt controller there is. Done twice, so
 * that a level-triggered pin whose end of interrupt got lost shows. The console itself stays
 * polled. */
static int serial_irq_once(void)
{
	cli();
	work &= ~(1u << 4);
	sti();
	outb(0x3f9, 0x02); /* IER: transmitter holding register empty */
	/* up to ~4 ticks, or a bounded spin should the tick itself be missing */
	u64 t0 = ticks;
	for (u64 n = 0; !(work & (1u << 4)) && ticks - t0 < 4 && n < (1UL << 22); n++)
		__asm__ volatile("pause");
	outb(0x3f9, 0x00);
	(void)inb(0x3fa); /* IIR: reading it clears the THRE interrupt */
	int got = (work & (1u << 4)) != 0;
	cli();
	work &= ~(1u << 4);
	sti();
	return got;
}

static void serial_irq_check(void)
{
	int first = serial_irq_once();
	int second = first && serial_irq_once();
	kprintf("probe: serial irq %s\n", second ? "ok" : "missing");
}

/* ---------------- keyboard ---------------- */
static int kbd_ctrl, kbd_alt, kbd_del, kbd_e0, kbd_f0;
/* user data `ignore-ctrl-alt-del`: a guest that does not shut down when asked */
static int ignore_cad;

static void kbd_byte(u8 b)
{
	if (b == 0xe0 || b == 0xe1) {
		kbd_e0 = 1;
		return;
	}
	if (b == 0xf0) { /* set 2 break prefix */
		kbd_f0 = 1;
		return;
	}
	int brk = kbd_f0;
	kbd_f0 = 0;
	kbd_e0 = 0;
	if (brk || (b & 0x80)) /* set 2 break, or set 1 break (and ack/BAT bytes) */
		return;
	/* make codes, accepted from scan code set 1 or set 2 */
	if (b == 0x14 || b == 0x1d)
		kbd_ctrl = 1;
	else if (b == 0x11 || b == 0x38)
		kbd_alt = 1;
	else if (b == 0x71 || b == 0x53)
		kbd_del = 1;
	else
		return;
	if (kbd_ctrl && kbd_alt && kbd_del) {
		if (ignore_cad) {
			kprintf("probe: ctrl-alt-del ignored\n");
			kbd_ctrl = kbd_alt = kbd_del = 0;
			return;
		}
		kprintf("probe: ctrl-alt-del\n");
		power_off();
	}
}

static void kbd_poll(void)
{
	for (int i = 0; i < 32; i++) {
		u8 st = inb(0x64);
		if (st == 0xff || !(st & 1)) /* 0xff: no controller */
			return;
		u8 b = inb(0x60);
		if (!(st & 0x20)) /* not mouse data */
			kbd_byte(b);
	}
}

/* ---------------- console input (COM1 receiver) ---------------- */
#define CON_LINE_MAX 120
static char con_line[CON_LINE_MAX];
static u32 con_len;

static void con_line_done(void)
{
	if (con_len)
		kprintf("probe: console %.*s\n", (int)con_len, con_line);
	con_len = 0;
}

/* Bytes typed on the UART come back as lines; a BREAK on the line is reported. */
static void uart_poll(void)
{
	for (int i = 0; i < 256; i++) {
		u8 lsr = inb(0x3fd);
		if (lsr == 0xff)
			return;
		lsr |= uart_lsr_saved;
		if (!(lsr & 1))
			return;
		u8 b = inb(0x3f8);
		uart_lsr_saved = 0;
		if (lsr & 0x10) { /* break: the NUL that comes with it is not input */
			con_line_done();
			kprintf("probe: console break\n");
			continue;
		}
		if (b == '\r' || b == '\n') {
			con_line_done();
			continue;
		}
		con_line[con_len++] = (b < 0x20 || b == 0x7f) ? '?' : (char)b;
		if (con_len == CON_LINE_MAX)
			con_line_done();
	}
}

/* ---------------- power button (ACPI generic event device) ---------------- */
/* user data `ignore-power-button`: a guest that does not shut down when asked */
static int ignore_power_button;

static void ged_poll(void)
{
	if (!(acpi_ged_events() & 1))
		return;
	if (ignore_power_button) {
		kprintf("probe: power-button ignored\n");
		return;
	}
	kprintf("probe: power-button\n");
	power_off();
}

/* ---------------- user-data script ---------------- */
static int is_sp(char c) { return c == ' ' || c == '\t'; }

static void run_script(const char *s, u32 n)
{
	u32 i = 0;
	while (i < n) {
		u32 st = i;
		while (i < n && s[i] != '\n')
			i++;
		u32 end = i;
		i++; /* skip LF */
		while (end > st && (s[end - 1] == '\r' || is_sp(s[end - 1])))
			end--;
		while (st < end && is_sp(s[st]))
			st++;
		if (st == end || s[st] == '#')
			continue;
		const char *w = s + st;
		u32 wl = 0;
		while (st + wl < end && !is_sp(w[wl]))
			wl++;
		u32 a = st + wl;
		while (a < end && is_sp(s[a]))
			a++;
		const char *arg = s + a;
		u32 al = end - a;
		if (str_eq_n(w, wl, "echo")) {
			kprintf("probe: user-data: %.*s\n", (int)al, arg);
		} else if (str_eq_n(w, wl, "poweroff")) {
			kprintf("probe: poweroff\n");
			power_off();
		} else if (str_eq_n(w, wl, "reboot")) {
			kprintf("probe: reboot\n");
			i8042_reset();
		} else if (str_eq_n(w, wl, "ignore-ctrl-alt-del")) {
			ignore_cad = 1;
		} else if (str_eq_n(w, wl, "ignore-power-button")) {
			ignore_power_button = 1;
		} else if (str_eq_n(w, wl, "net-silent-after")) {
			/* net-silent-after <n>: answer n more ARP requests, then nothing at all */
			u64 n;
			if (!parse_u64(arg, al, &n) || n > 1000000) {
				kprintf("probe: user-data: bad net-silent-after command\n");
				continue;
			}
			net_reply_budget = (int)n;
		} else if (str_eq_n(w, wl, "ping6")) {
			net6_ping(arg, al);
		} else if (str_eq_n(w, wl, "ping")) {
			u32 dst;
			if (parse_ipv4(arg, al, &dst) != al) {
				kprintf("probe: user-data: bad ping command\n");
				continue;
			}
			net_ping(dst);
		} else if (str_eq_n(w, wl, "marker") || str_eq_n(w, wl, "stop-if-marker")) {
			/* marker <disk> <lba> <text>; stop-if-marker <disk> <lba> <text> ends the
			 * script when the sector holds that marker (a script that runs once per
			 * disk, e.g. a reboot that must not loop) */
			int stop_if = wl != 6;
			u32 dl = 0;
			while (dl < al && !is_sp(arg[dl]))
				dl++;
			u32 p = dl;
			while (p < al && is_sp(arg[p]))
				p++;
			u64 lba;
			usize c = parse_u64(arg + p, al - p, &lba);
			if (!dl || !c || (p + c < al && !is_sp(arg[p + c]))) {
				kprintf("probe: user-data: bad %.*s command\n", (int)wl, w);
				continue;
			}
			p += (u32)c;
			while (p < al && is_sp(arg[p]))
				p++;
			if (!stop_if)
				do_marker(arg, dl, lba, arg + p, al - p);
			else if (has_marker(arg, dl, lba, arg + p, al - p) == 1)
				break;
		} else {
			kprintf("probe: user-data: unknown command %.*s\n", (int)wl, w);
		}
	}
	kprintf("probe: user-data done\n");
}

/* Called by config_drive_run() with the user-data member in memory. */
void user_data_found(const char *data, u32 size, u32 stored)
{
	kprintf("probe: user-data %u bytes\n", size);
	run_script(data, stored);
}

/* ---------------- main ---------------- */
void kmain(int kind, u64 info)
{
	idt_init();
	read_boot_info(kind, info);
	kprintf("probe: ready\n");
	kprintf("probe: entry %s\n", kind == ENTRY_PVH ? "pvh" : "linux64");
	parse_cmdline();
	kprintf("probe: memory %lu MiB\n", mem_bytes >> 20);
	u32 cpus = read_mptable();
	kprintf("probe: cpus %u\n", cpus ? cpus : 1);
	acpi_init(rsdp_hint);
	smbios_init();
	use_ioapic = !pic_present() && have_lapic();
	kprintf("probe: interrupts %s\n", use_ioapic ? "ioapic" : "8259");

	virtio_probe_all();
	if (opt_fault) /* test aid: an invalid opcode, to see the exception report */
		__asm__ volatile("ud2");

	/* interrupts: 8259 pair (timer, keyboard, cascade, COM1, the generic event device, virtio
	 * IRQs) and a PIT safety tick, or without an 8259 the IOAPIC (keyboard, COM1, the generic
	 * event device, virtio IRQs) and a local APIC timer tick */
	if (use_ioapic) {
		u32 mask = (1 << 1) | (1 << 4);
		for (u32 i = 0; i < ndevs; i++)
			if (devs[i].irq < 24)
				mask |= 1u << devs[i].irq;
		if (acpi.ged_reg && acpi.ged_irq < 24)
			mask |= 1u << acpi.ged_irq;
		apic_init(mask);
	} else {
		u16 mask = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 4);
		for (u32 i = 0; i < ndevs; i++)
			if (devs[i].irq < 16 && devs[i].irq != 2)
				mask |= (u16)(1 << devs[i].irq);
		if (acpi.ged_reg && acpi.ged_irq < 16 && acpi.ged_irq != 2)
			mask |= (u16)(1 << acpi.ged_irq);
		lapic_passthrough();
		pic_init(mask);
		pit_init();
	}
	sti();
	serial_irq_check();
	/* COM1 receiver: data-available interrupt (IER bit 0), OUT2 gates the line */
	outb(0x3fc, 0x0b);
	outb(0x3f9, 0x01);

	if (ram_top_low && ram_top_low < MEM_NEEDED) {
		kprintf("probe: not enough memory for device buffers\n");
	} else {
		virtio_init_all();
		/* probe.write entries naming a disk that does not exist */
		for (u32 w = 0; w < nwrites; w++)
			if (!blk_by_name(writes[w].disk, writes[w].disklen))
				do_marker(writes[w].disk, writes[w].disklen, writes[w].lba, writes[w].text,
					  writes[w].textlen);
		config_drive_run();
	}

	if (opt_poweroff) {
		kprintf("probe: poweroff\n");
		power_off();
	}
	kprintf("probe: idle\n");

	for (;;) {
		cli();
		if (!work) {
			/* Idle: mask the timer so that only devices wake us. Every tick costs
			 * a VM exit, and on hosts that emulate guest code a costly one. */
			tick_mask(1);
			__asm__ volatile("sti; hlt; cli" ::: "memory");
			tick_mask(0);
		}
		u32 w = work;
		work = 0;
		sti();
		virtio_service(w);
		kbd_poll();
		uart_poll();
		ged_poll();
	}
}

/* probe.write entries for one disk, run right after its "disk" line. */
void disk_writes(const char *name)
{
	for (u32 w = 0; w < nwrites; w++)
		if (str_eq_n(writes[w].disk, writes[w].disklen, name))
			do_marker(writes[w].disk, writes[w].disklen, writes[w].lba, writes[w].text,
				  writes[w].textlen);
}
