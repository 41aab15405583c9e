/*
 * probe guest: entry points, GDT, static page tables, interrupt stubs.
 *
 *  _start64  (ELF e_entry): Linux 64-bit boot protocol, RSI = boot_params.
 *  _start32  (PVH note)   : 32-bit protected mode, paging off, EBX = hvm_start_info.
 *
 * Both switch to the probe's own GDT and page tables (identity map of 0..4 GiB with
 * 2 MiB pages, 3..4 GiB uncached) and call kmain(entry_kind, info_pointer).
 */

#define ENTRY_PVH 1
#define ENTRY_LINUX64 2

/* ---------------- PVH ELF note ---------------- */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4            /* namesz */
	.long 8            /* descsz */
	.long 18           /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad _start32
	.balign 4

	.section .text.entry, "ax"
/* ---------------- 32-bit PVH entry ---------------- */
	.code32
	.globl _start32
_start32:
	cli
	cld
	movl	%ebx, %esi              /* hvm_start_info */
	lgdt	gdt_ptr
	movl	$0x18, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$stack_top, %esp
	movl	%cr4, %eax
	orl	$0x20, %eax             /* PAE */
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$0xc0000080, %ecx       /* EFER.LME */
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000001, %eax       /* PG | PE */
	movl	%eax, %cr0
	ljmp	$0x10, $pvh_long

	.code64
pvh_long:
	movl	%esi, %r13d             /* zero-extends */
	movl	$ENTRY_PVH, %r12d
	jmp	common64

/* ---------------- 64-bit Linux boot protocol entry ---------------- */
	.globl _start64
_start64:
	cli
	cld
	movq	%rsi, %r13              /* boot_params */
	movl	$ENTRY_LINUX64, %r12d
	lgdt	gdt_ptr
	movq	$pml4, %rax
	movq	%rax, %cr3
	/* CS stays 0x10: the same 64-bit code selector in our GDT */

common64:
	movl	$0x18, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	movq	$stack_top, %rsp
	xorl	%ebp, %ebp
	/* zero .bss (kept small) */
	movq	$__bss_start, %rdi
	movq	$__bss_end, %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	movq	%r12, %rdi
	movq	%r13, %rsi
	call	kmain
1:	cli
	hlt
	jmp	1b

/* ---------------- interrupt stubs ----------------
 * Stub n (vectors 0..55: exceptions, then 0x20 + IRQ for the 8259's 16 IRQs or the
 * IOAPIC's 24 pins) lives at isr_stubs + 16*n. Each pushes a dummy error code
 * where the CPU does not, then the vector, and jumps to isr_common. */
	.text
	.balign 16
	.globl isr_stubs
isr_stubs:
	.set vec, 0
	.rept 56
	.balign 16
	.if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	isr_common
	.set vec, vec + 1
	.endr

	.balign 16
	.globl isr_spurious
isr_spurious:                       /* LAPIC spurious vector: no EOI */
	iretq

isr_common:
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	movq	72(%rsp), %rdi          /* vector */
	movq	%rsp, %rsi              /* frame */
	cld
	call	isr_dispatch
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	addq	$16, %rsp
	iretq

/* ---------------- GDT ---------------- */
	.section .rodata
	.balign 16
gdt:
	.quad 0                         /* 0x00 null */
	.quad 0x00cf9a000000ffff        /* 0x08 32-bit code (PVH) */
	.quad 0x00af9a000000ffff        /* 0x10 64-bit code */
	.quad 0x00cf92000000ffff        /* 0x18 data */
gdt_end:
	.balign 8
	.word 0, 0, 0
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

/* ---------------- page tables: identity 0..4 GiB, 2 MiB pages ---------------- */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x3
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x3
	.quad pd + 0x1000 + 0x3
	.quad pd + 0x2000 + 0x3
	.quad pd + 0x3000 + 0x3
	.fill 508, 8, 0
pd:
	.set pg, 0
	.rept 1536                      /* 0..3 GiB: write-back */
	.quad (pg << 21) | 0x83
	.set pg, pg + 1
	.endr
	.rept 512                       /* 3..4 GiB (MMIO): PCD | PWT */
	.quad (pg << 21) | 0x9b
	.set pg, pg + 1
	.endr

/* ---------------- stack (not zeroed, not in the file) ---------------- */
	.section .noinit, "aw", @nobits
	.balign 16
stack:
	.skip 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
