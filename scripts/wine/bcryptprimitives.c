/*
 * bcryptprimitives.dll for Wine 8, which has none: since Go 1.22 a Go
 * program for Windows takes its random bytes from ProcessPrng there, and
 * without it does not start. scripts/wine-setup builds this into the
 * prefix's system32. Delete it, and its step in wine-setup, once the Wine
 * that Debian ships has a bcryptprimitives.dll with ProcessPrng.
 *
 * The bytes are RtlGenRandom's (advapi32's SystemFunction036), which takes
 * a ULONG count, hence the chunks. Windows' ProcessPrng never fails; should
 * RtlGenRandom, FALSE tells Go, which then stops rather than use the
 * buffer.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE buf, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(buf, n))
			return FALSE;
		buf += n;
		len -= n;
	}
	return TRUE;
}
