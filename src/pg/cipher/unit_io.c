/*
 * The one read-merge-write engine of the files cmk encrypts below the
 * storage manager (WAL, temporary files): such a file is a row of 8 kB units, each
 * encrypted on its own (XTS needs the whole unit), while PostgreSQL reads
 * and writes at any offset and length. So:
 *   read   whole units of the range are decrypted in place; a unit only
 *          partly in the range is read whole from the file, decrypted, and
 *          the part asked for is copied;
 *   write  whole units are encrypted into a per-process scratch area and
 *          written with one pwrite per run of up to SCRATCH_UNITS; a unit
 *          only partly in the range is merged with the stored unit and
 *          written back.
 * What a unit is (its cipher, its tweak, what a stale or short unit means)
 * is the file class's, given as a cmk_unit_class (wal_cipher.c,
 * temp_cipher.c). Hot path (XLogWrite under WALWriteLock): no allocation,
 * no lock, no system call but the writes.
 */
#include "postgres.h"

#include "pg/cipher/cipher.h"

#define SCRATCH_UNITS 64

/* Aligned for O_DIRECT WAL writes. */
static char scratch[SCRATCH_UNITS * CMK_UNIT_BYTES] pg_attribute_aligned(4096);

int
cmk_unit_after_read(const cmk_unit_class *class, int fd, char *buf, size_t len, off_t offset)
{
	off_t		end = offset + (off_t) len;
	off_t		unit_off = offset - offset % CMK_UNIT_BYTES;

	for (; unit_off < end; unit_off += CMK_UNIT_BYTES)
	{
		off_t		from = Max(unit_off, offset);
		off_t		to = Min(unit_off + CMK_UNIT_BYTES, end);

		if (from == unit_off && to == unit_off + CMK_UNIT_BYTES)
		{
			if (class->decrypt_whole(fd, unit_off, buf + (unit_off - offset)) != 0)
				return -1;
			continue;
		}
		if (class->read_part(fd, unit_off, from, to, buf + (from - offset)) != 0)
			return -1;
	}
	return 0;
}

ssize_t
cmk_unit_write(const cmk_unit_class *class, int fd, const char *buf, size_t count, off_t offset)
{
	off_t		end = offset + (off_t) count;
	off_t		unit_off = offset - offset % CMK_UNIT_BYTES;
	off_t		run_start = -1;
	int			run_units = 0;

	for (; unit_off < end; unit_off += CMK_UNIT_BYTES)
	{
		off_t		from = Max(unit_off, offset);
		off_t		to = Min(unit_off + CMK_UNIT_BYTES, end);

		if (from == unit_off && to == unit_off + CMK_UNIT_BYTES)
		{
			/* A whole unit: encrypt into the current run of the scratch. */
			if (run_units == SCRATCH_UNITS)
			{
				if (cmk_pwrite_all(fd, scratch, (size_t) run_units * CMK_UNIT_BYTES, run_start) < 0)
					return -1;
				run_units = 0;
			}
			if (run_units == 0)
				run_start = unit_off;
			class->encrypt_whole(fd, unit_off, buf + (unit_off - offset),
								 scratch + (size_t) run_units * CMK_UNIT_BYTES);
			run_units++;
			continue;
		}

		/* Part of a unit: flush the run, then merge with the stored unit. */
		if (run_units > 0)
		{
			if (cmk_pwrite_all(fd, scratch, (size_t) run_units * CMK_UNIT_BYTES, run_start) < 0)
				return -1;
			run_units = 0;
		}
		if (class->write_part(fd, unit_off, from, to, buf + (from - offset)) != 0)
			return -1;
	}
	if (run_units > 0 && cmk_pwrite_all(fd, scratch, (size_t) run_units * CMK_UNIT_BYTES, run_start) < 0)
		return -1;
	return (ssize_t) count;
}
