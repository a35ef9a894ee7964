#pragma once

// Turning Modbus registers into numbers, with no I/O. A register is 16 bits, sent big-endian on the
// wire (libmodbus hands them over in host order); 32-bit values span two consecutive registers,
// and devices disagree on which of the two holds the high word: word order "big" means the first
// register (the lower address) is the high word (ABCD), "little" that it is the low word (CDAB).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace tern::edge {

enum class ModbusType : std::uint8_t { Int16, Uint16, Int32, Uint32, Float32 };
enum class ModbusWordOrder : std::uint8_t { Big, Little };

// "int16", "uint16", "int32", "uint32", "float32".
std::optional<ModbusType> parseModbusType(std::string_view name);
// "big", "little".
std::optional<ModbusWordOrder> parseModbusWordOrder(std::string_view name);

constexpr std::size_t modbusRegisterCount(ModbusType type) {
    return type == ModbusType::Int16 || type == ModbusType::Uint16 ? 1 : 2;
}

// The value of registers[0..modbusRegisterCount(type)), as read, lowest address first. NaN when
// there are too few registers; float32 may itself decode to NaN or an infinity, which callers must
// check for.
double decodeModbusValue(ModbusType type, ModbusWordOrder order,
                         std::span<const std::uint16_t> registers);

}  // namespace tern::edge
