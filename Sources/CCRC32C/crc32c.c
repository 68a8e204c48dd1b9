#include "CCRC32C.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

int tokenledger_crc32c_hardware(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    return (ecx & bit_SSE4_2) != 0;
}

// Eight bytes per crc32 instruction; the unaligned head and the tail byte by byte.
__attribute__((target("sse4.2")))
uint32_t tokenledger_crc32c_update(uint32_t register_value, const uint8_t *bytes, size_t count) {
    uint64_t value = register_value;
    while (count > 0 && ((uintptr_t)bytes & 7) != 0) {
        value = __builtin_ia32_crc32qi((uint32_t)value, *bytes++);
        count--;
    }
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        value = __builtin_ia32_crc32di(value, word);
        bytes += 8;
        count -= 8;
    }
    while (count > 0) {
        value = __builtin_ia32_crc32qi((uint32_t)value, *bytes++);
        count--;
    }
    return (uint32_t)value;
}

#else

// Other processors use the table-driven version in Swift.
int tokenledger_crc32c_hardware(void) { return 0; }

uint32_t tokenledger_crc32c_update(uint32_t register_value, const uint8_t *bytes, size_t count) {
    (void)bytes;
    (void)count;
    return register_value;
}

#endif
