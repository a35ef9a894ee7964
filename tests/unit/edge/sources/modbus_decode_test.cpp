#include "tern/edge/sources/modbus_decode.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace tern::edge {
namespace {

// A 32-bit pattern as two registers in the given word order.
std::vector<std::uint16_t> words(std::uint32_t bits, ModbusWordOrder order) {
    const auto high = static_cast<std::uint16_t>(bits >> 16);
    const auto low = static_cast<std::uint16_t>(bits & 0xFFFF);
    return order == ModbusWordOrder::Big ? std::vector<std::uint16_t>{high, low}
                                         : std::vector<std::uint16_t>{low, high};
}

double decode(ModbusType type, ModbusWordOrder order, const std::vector<std::uint16_t>& regs) {
    return decodeModbusValue(type, order, regs);
}

TEST(ModbusDecodeTest, SixteenBitTypes) {
    using enum ModbusType;
    EXPECT_EQ(decode(Int16, ModbusWordOrder::Big, {0xFFFE}), -2.0);
    EXPECT_EQ(decode(Int16, ModbusWordOrder::Big, {0x8000}), -32768.0);
    EXPECT_EQ(decode(Int16, ModbusWordOrder::Big, {0x7FFF}), 32767.0);
    EXPECT_EQ(decode(Uint16, ModbusWordOrder::Big, {0xFFFE}), 65534.0);
    EXPECT_EQ(decode(Uint16, ModbusWordOrder::Big, {0}), 0.0);
    // Word order means nothing for one register; a second one is ignored.
    EXPECT_EQ(decode(Int16, ModbusWordOrder::Little, {0xFFFF, 0x1234}), -1.0);
}

TEST(ModbusDecodeTest, ThirtyTwoBitIntegersInBothWordOrders) {
    for (const auto order : {ModbusWordOrder::Big, ModbusWordOrder::Little}) {
        const auto minus = std::bit_cast<std::uint32_t>(std::int32_t{-123456789});
        EXPECT_EQ(decode(ModbusType::Int32, order, words(minus, order)), -123456789.0);
        EXPECT_EQ(decode(ModbusType::Int32, order, words(0x80000000u, order)), -2147483648.0);
        EXPECT_EQ(decode(ModbusType::Uint32, order, words(4'000'000'000u, order)), 4e9);
        EXPECT_EQ(decode(ModbusType::Uint32, order, words(0xFFFFFFFFu, order)), 4294967295.0);
    }
    // The same two registers read the other way round are another number.
    EXPECT_EQ(decode(ModbusType::Uint32, ModbusWordOrder::Big, {0x0001, 0x0002}), 65538.0);
    EXPECT_EQ(decode(ModbusType::Uint32, ModbusWordOrder::Little, {0x0001, 0x0002}), 131073.0);
}

TEST(ModbusDecodeTest, Float32InBothWordOrders) {
    for (const auto order : {ModbusWordOrder::Big, ModbusWordOrder::Little}) {
        for (const float f : {21.37f, -0.5f, 0.0f, 1e-30f, 3.4e38f}) {
            EXPECT_EQ(
                decode(ModbusType::Float32, order, words(std::bit_cast<std::uint32_t>(f), order)),
                static_cast<double>(f))
                << f;
        }
    }
    // 1.0f is 0x3F800000: ABCD puts 0x3F80 first, CDAB last.
    EXPECT_EQ(decode(ModbusType::Float32, ModbusWordOrder::Big, {0x3F80, 0x0000}), 1.0);
    EXPECT_EQ(decode(ModbusType::Float32, ModbusWordOrder::Little, {0x0000, 0x3F80}), 1.0);
    // Non-finite patterns come through for the caller to reject.
    EXPECT_TRUE(std::isnan(decode(ModbusType::Float32, ModbusWordOrder::Big, {0x7FC0, 0x0000})));
    EXPECT_TRUE(std::isinf(decode(ModbusType::Float32, ModbusWordOrder::Big, {0x7F80, 0x0000})));
}

TEST(ModbusDecodeTest, TooFewRegistersIsNaN) {
    EXPECT_TRUE(std::isnan(decode(ModbusType::Int32, ModbusWordOrder::Big, {1})));
    EXPECT_TRUE(std::isnan(decode(ModbusType::Uint16, ModbusWordOrder::Big, {})));
}

TEST(ModbusDecodeTest, NamesAndRegisterCounts) {
    EXPECT_EQ(parseModbusType("int16"), ModbusType::Int16);
    EXPECT_EQ(parseModbusType("uint16"), ModbusType::Uint16);
    EXPECT_EQ(parseModbusType("int32"), ModbusType::Int32);
    EXPECT_EQ(parseModbusType("uint32"), ModbusType::Uint32);
    EXPECT_EQ(parseModbusType("float32"), ModbusType::Float32);
    EXPECT_EQ(parseModbusType("float64"), std::nullopt);
    EXPECT_EQ(parseModbusType("INT16"), std::nullopt);
    EXPECT_EQ(parseModbusWordOrder("big"), ModbusWordOrder::Big);
    EXPECT_EQ(parseModbusWordOrder("little"), ModbusWordOrder::Little);
    EXPECT_EQ(parseModbusWordOrder("middle"), std::nullopt);
    EXPECT_EQ(modbusRegisterCount(ModbusType::Int16), 1u);
    EXPECT_EQ(modbusRegisterCount(ModbusType::Uint16), 1u);
    EXPECT_EQ(modbusRegisterCount(ModbusType::Int32), 2u);
    EXPECT_EQ(modbusRegisterCount(ModbusType::Uint32), 2u);
    EXPECT_EQ(modbusRegisterCount(ModbusType::Float32), 2u);
}

}  // namespace
}  // namespace tern::edge
