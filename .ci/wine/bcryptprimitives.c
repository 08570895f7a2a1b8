/*
 * A stand-in for Windows' bcryptprimitives.dll, for tests under Wine 8.0
 * only (Wine 8.0 lacks the DLL; Go >= 1.22 calls its ProcessPrng at
 * start). Built with mingw-w64 by .ci/cross and copied into the Wine
 * prefix; never shipped, never linked into ejectsafe.
 *
 * ProcessPrng fills the buffer from RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements from the host's random source.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T n)
{
	while (n > 0) {
		ULONG chunk = n > 0x10000000 ? 0x10000000 : (ULONG)n;
		if (!SystemFunction036(data, chunk))
			return FALSE;
		data += chunk;
		n -= chunk;
	}
	return TRUE;
}
