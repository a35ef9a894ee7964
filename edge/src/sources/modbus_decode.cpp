#include "tern/edge/sources/modbus_decode.h"

#include <bit>
#include <limits>

namespace tern::edge {

std::optional<ModbusType> parseModbusType(std::string_view name) {
    if (name == "int16") return ModbusType::Int16;
    if (name == "uint16") return ModbusType::Uint16;
    if (name == "int32") return ModbusType::Int32;
    if (name == "uint32") return ModbusType::Uint32;
    if (name == "float32") return ModbusType::Float32;
    return std::nullopt;
}

std::optional<ModbusWordOrder> parseModbusWordOrder(std::string_view name) {
    if (name == "big") return ModbusWordOrder::Big;
    if (name == "little") return ModbusWordOrder::Little;
    return std::nullopt;
}

double decodeModbusValue(ModbusType type, ModbusWordOrder order,
                         std::span<const std::uint16_t> registers) {
    if (registers.size() < modbusRegisterCount(type)) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    switch (type) {
        case ModbusType::Int16:
            return static_cast<double>(std::bit_cast<std::int16_t>(registers[0]));
        case ModbusType::Uint16:
            return static_cast<double>(registers[0]);
        default:
            break;
    }
    const std::uint32_t high = order == ModbusWordOrder::Big ? registers[0] : registers[1];
    const std::uint32_t low = order == ModbusWordOrder::Big ? registers[1] : registers[0];
    const std::uint32_t bits = (high << 16) | low;
    switch (type) {
        case ModbusType::Int32:
            return static_cast<double>(std::bit_cast<std::int32_t>(bits));
        case ModbusType::Uint32:
            return static_cast<double>(bits);
        case ModbusType::Float32:
            return static_cast<double>(std::bit_cast<float>(bits));
        default:
            return std::numeric_limits<double>::quiet_NaN();
    }
}

}  // namespace tern::edge
