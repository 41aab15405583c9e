/* probe guest: the firmware tables a guest reads, found and checked as an OS does.
 *   ACPI:   RSDP (boot information, else a scan of 0xe0000-0xfffff) -> XSDT -> FADT, MADT;
 *           FADT -> DSDT. Every table's signature, length and checksum is checked. From the
 *           FADT: the sleep control register (power off); from the DSDT: \_S5's sleep type and
 *           the generic event device's interrupt and event register (the power button).
 *   SMBIOS: the 3.0 (_SM3_) or 2.x (_SM_) entry point in 0xf0000-0xfffff, then the system
 *           information structure's manufacturer, product name and serial number.
 * See README.md for the lines printed. */
#include "probe.h"

struct acpi_info acpi;

static u8 sum8(const u8 *p, u32 n)
{
	u8 s = 0;
	for (u32 i = 0; i < n; i++)
		s += p[i];
	return s;
}

static u32 rd32(const u8 *p) { return *(const u32 *)p; }
static u64 rd64(const u8 *p) { return *(const u64 *)p; }

/* Only addresses the probe's page tables map (0-4 GiB) and that are not device windows. */
static int plausible(u64 addr, u64 len)
{
	return addr && addr < 0xc0000000UL && len < 0x100000UL && addr + len < 0xc0000000UL;
}

static int rsdp_valid(const u8 *p)
{
	if (memcmp(p, "RSD PTR ", 8) || sum8(p, 20))
		return 0;
	if (p[15] >= 2) { /* ACPI 2.0+: length and extended checksum */
		u32 len = rd32(p + 20);
		if (len < 36 || len > 64 || sum8(p, len))
			return 0;
	}
	return 1;
}

static const u8 *find_rsdp(u64 hint)
{
	if (hint && plausible(hint, 36) && rsdp_valid((const u8 *)hint))
		return (const u8 *)hint;
	for (u64 a = 0xe0000; a < 0x100000; a += 16)
		if (rsdp_valid((const u8 *)a))
			return (const u8 *)a;
	return NULL;
}

/* A table with signature `sig` at `addr`: length and checksum checked. */
static const u8 *table(u64 addr, const char *sig)
{
	if (!plausible(addr, 36))
		return NULL;
	const u8 *t = (const u8 *)addr;
	u32 len = rd32(t + 4);
	if (memcmp(t, sig, 4) || len < 36 || !plausible(addr, len) || sum8(t, len))
		return NULL;
	return t;
}

/* AML PkgLength at p: returns its value and sets *n to the bytes it takes. */
static u32 pkg_length(const u8 *p, u32 *n)
{
	u32 follow = p[0] >> 6;
	*n = follow + 1;
	if (!follow)
		return p[0] & 0x3f;
	u32 v = p[0] & 0x0f;
	for (u32 i = 0; i < follow; i++)
		v |= (u32)p[1 + i] << (4 + 8 * i);
	return v;
}

/* An AML integer (ZeroOp, OneOp, Byte/Word/DWordConst) at p; returns bytes used, 0 if none. */
static u32 aml_int(const u8 *p, const u8 *end, u64 *v)
{
	if (p >= end)
		return 0;
	switch (p[0]) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0x0a: if (p + 2 > end) return 0; *v = p[1]; return 2;
	case 0x0b: if (p + 3 > end) return 0; *v = *(const u16 *)(p + 1); return 3;
	case 0x0c: if (p + 5 > end) return 0; *v = rd32(p + 1); return 5;
	}
	return 0;
}

static const u8 *find(const u8 *from, const u8 *end, const void *needle, u32 n)
{
	for (const u8 *p = from; p + n <= end; p++)
		if (!memcmp(p, needle, n))
			return p;
	return NULL;
}

/* Name(_S5_, Package() { SLP_TYP, ... }): the first element. */
static int dsdt_s5(const u8 *aml, const u8 *end, u8 *type)
{
	const u8 *p = find(aml, end, "_S5_", 4);
	if (!p || p + 5 > end || p[4] != 0x12)
		return 0;
	u32 n;
	pkg_length(p + 5, &n);
	const u8 *e = p + 5 + n + 1; /* after PkgLength and NumElements */
	u64 v;
	if (!aml_int(e, end, &v) || v > 7)
		return 0;
	*type = (u8)v;
	return 1;
}

/* The generic event device: the Device() holding _HID "ACPI0013", its ExtendedInterrupt
 * descriptor and its OperationRegion (the event register). */
static void dsdt_ged(const u8 *aml, const u8 *end)
{
	const u8 *hid = find(aml, end, "ACPI0013", 9);
	if (!hid)
		return;
	/* The closest DeviceOp (0x5b 0x82) before the _HID bounds the device. */
	const u8 *dev = NULL;
	for (const u8 *p = hid; p >= aml + 2 && !dev; p--)
		if (p[-2] == 0x5b && p[-1] == 0x82)
			dev = p;
	if (!dev)
		return;
	u32 n;
	u32 len = pkg_length(dev, &n);
	const u8 *dend = dev + len;
	if (dend > end || dend <= hid)
		return;
	const u8 *irq = find(hid, dend, "\x89\x06\x00", 3);
	const u8 *reg = find(hid, dend, "\x5b\x80", 2);
	if (!irq || irq + 9 > dend || irq[4] != 1 || !reg || reg + 8 > dend)
		return;
	u64 base, size;
	const u8 *q = reg + 6; /* after ExtOp OpRegionOp NameSeg */
	u8 space = *q++;
	u32 c = aml_int(q, dend, &base);
	if (!c || !aml_int(q + c, dend, &size) || size < 4)
		return;
	acpi.ged_irq = rd32(irq + 5);
	acpi.ged_space = space;
	acpi.ged_reg = base;
}

static void fadt_registers(const u8 *fadt, u32 len)
{
	u32 flags = len >= 116 ? rd32(fadt + 112) : 0;
	acpi.hw_reduced = !!(flags & (1u << 20));
	/* Sleep control register (GAS at 244): system memory or I/O space, 8 bits. */
	if (len >= 256 && (fadt[244] == 0 || fadt[244] == 1) && rd64(fadt + 248)) {
		acpi.sleep_space = fadt[244];
		acpi.sleep_reg = rd64(fadt + 248);
	}
}

void acpi_init(u64 rsdp_hint)
{
	const u8 *rsdp = find_rsdp(rsdp_hint);
	if (!rsdp) {
		kprintf("probe: acpi none\n");
		return;
	}
	const char *bad = NULL;
	const u8 *xsdt = rsdp[15] >= 2 ? table(rd64(rsdp + 24), "XSDT") : NULL;
	const u8 *fadt = NULL, *madt = NULL, *dsdt = NULL;
	if (!xsdt) {
		bad = "xsdt";
	} else {
		u32 len = rd32(xsdt + 4);
		for (u32 off = 36; off + 8 <= len; off += 8) {
			u64 a = rd64(xsdt + off);
			if (!fadt)
				fadt = table(a, "FACP");
			if (!madt)
				madt = table(a, "APIC");
		}
		if (!fadt)
			bad = "fadt";
		else if (!madt)
			bad = "madt";
	}
	if (!bad) {
		u32 flen = rd32(fadt + 4);
		u64 d = flen >= 148 && rd64(fadt + 140) ? rd64(fadt + 140) : rd32(fadt + 40);
		dsdt = table(d, "DSDT");
		if (!dsdt)
			bad = "dsdt";
	}
	if (bad) {
		kprintf("probe: acpi bad %s\n", bad);
		return;
	}
	fadt_registers(fadt, rd32(fadt + 4));
	const u8 *aml = dsdt + 36, *end = dsdt + rd32(dsdt + 4);
	if (!dsdt_s5(aml, end, &acpi.s5_type))
		acpi.sleep_reg = 0; /* no sleep type to write: no ACPI power-off */
	dsdt_ged(aml, end);
	acpi.ok = 1;
	kprintf("probe: acpi ok\n");
}

/* Power off through the sleep control register: SLP_EN | SLP_TYP = \_S5. */
void acpi_power_off(void)
{
	if (!acpi.ok || !acpi.sleep_reg)
		return;
	u8 v = (u8)(0x20 | (acpi.s5_type << 2));
	if (acpi.sleep_space == 1)
		outb((u16)acpi.sleep_reg, v);
	else
		*(volatile u8 *)acpi.sleep_reg = v;
}

/* Reads (and so takes) the generic event device's pending events. */
u32 acpi_ged_events(void)
{
	if (!acpi.ok || !acpi.ged_reg)
		return 0;
	if (acpi.ged_space == 1) {
		u32 v;
		__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"((u16)acpi.ged_reg));
		return v;
	}
	return mmio_r32(acpi.ged_reg);
}

/* ---------------- SMBIOS ---------------- */
static const char *smbios_string(const u8 *s, u8 index, const u8 *end)
{
	if (!index)
		return NULL;
	const u8 *p = s + s[1];
	for (u8 i = 1; p < end && *p; i++) {
		if (i == index)
			return (const char *)p;
		while (p < end && *p)
			p++;
		p++;
	}
	return NULL;
}

static void print_str(const char *s)
{
	if (!s || !*s) {
		kprintf(" none");
		return;
	}
	kprintf(" ");
	usize n = 0;
	while (n < 64 && s[n])
		n++;
	con_write(s, n);
}

void smbios_init(void)
{
	u64 tab = 0, tlen = 0;
	for (u64 a = 0xf0000; a < 0x100000 && !tab; a += 16) {
		const u8 *e = (const u8 *)a;
		if (!memcmp(e, "_SM3_", 5) && e[6] >= 24 && a + e[6] <= 0x100000 && !sum8(e, e[6])) {
			tab = rd64(e + 16);
			tlen = rd32(e + 12);
		} else if (!memcmp(e, "_SM_", 4) && e[5] >= 31 && a + e[5] <= 0x100000 && !sum8(e, e[5]) &&
			   !memcmp(e + 16, "_DMI_", 5)) {
			tab = rd32(e + 24);
			tlen = *(const u16 *)(e + 22);
		}
	}
	if (!tab || !plausible(tab, tlen)) {
		kprintf("probe: smbios none\n");
		return;
	}
	const u8 *p = (const u8 *)tab, *end = p + tlen;
	while (p + 4 <= end) {
		u8 type = p[0], len = p[1];
		if (len < 4 || p + len > end)
			break;
		if (type == 1 && len >= 8) {
			kprintf("probe: smbios");
			print_str(smbios_string(p, p[4], end));
			print_str(smbios_string(p, p[5], end));
			print_str(smbios_string(p, p[7], end));
			kprintf("\n");
			return;
		}
		if (type == 127)
			break;
		/* skip the formatted area and the string set (ends with a double NUL) */
		const u8 *q = p + len;
		while (q + 1 < end && (q[0] || q[1]))
			q++;
		p = q + 2;
	}
	kprintf("probe: smbios none\n");
}
