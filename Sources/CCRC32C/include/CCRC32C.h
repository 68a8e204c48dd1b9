// CRC-32C with the processor's instruction, for LedgerStore's CRC32C (which keeps a table-driven
// version for processors without one). The register is passed and returned as is: the caller
// inverts before and after, as CRC-32C does.
#ifndef TOKENLEDGER_CCRC32C_H
#define TOKENLEDGER_CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this processor has a CRC-32C instruction this build can use (SSE 4.2 on x86-64), else 0.
int tokenledger_crc32c_hardware(void);

/// The CRC-32C register after `count` bytes from `register_value`. Only when
/// `tokenledger_crc32c_hardware()` returned 1.
uint32_t tokenledger_crc32c_update(uint32_t register_value, const uint8_t *bytes, size_t count);

#endif
