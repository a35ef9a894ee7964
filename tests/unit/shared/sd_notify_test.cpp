#include "tern/shared/sd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace tern::shared {
namespace {

// A datagram socket standing in for systemd's notify socket.
class NotifySocket {
public:
    NotifySocket() {
        path_ = "/tmp/tern-notify-" + std::to_string(::getpid()) + ".sock";
        ::unlink(path_.c_str());
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
        timeval timeout{2, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    const std::string& path() const { return path_; }
    std::string receive() {
        char buffer[256];
        const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
        return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
    }

private:
    std::string path_;
    int fd_ = -1;
};

class SdNotifyTest : public ::testing::Test {
protected:
    void TearDown() override {
        ::unsetenv("NOTIFY_SOCKET");
        ::unsetenv("WATCHDOG_USEC");
        ::unsetenv("WATCHDOG_PID");
    }
};

TEST_F(SdNotifyTest, SendsStateToTheNotifySocket) {
    NotifySocket socket;
    ::setenv("NOTIFY_SOCKET", socket.path().c_str(), 1);
    EXPECT_TRUE(sdNotify("READY=1"));
    EXPECT_EQ(socket.receive(), "READY=1");
    EXPECT_TRUE(sdNotify("WATCHDOG=1"));
    EXPECT_EQ(socket.receive(), "WATCHDOG=1");
}

TEST_F(SdNotifyTest, IsANoOpOutsideSystemd) {
    ::unsetenv("NOTIFY_SOCKET");
    EXPECT_FALSE(sdNotify("READY=1"));
    ::setenv("NOTIFY_SOCKET", "/nonexistent/socket", 1);
    EXPECT_FALSE(sdNotify("READY=1"));
}

TEST_F(SdNotifyTest, WatchdogPeriodIsHalfOfWatchdogSecForThisProcess) {
    EXPECT_FALSE(sdWatchdogPeriod());
    ::setenv("WATCHDOG_USEC", "10000000", 1);
    EXPECT_EQ(sdWatchdogPeriod(), std::chrono::microseconds{5'000'000});
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    EXPECT_EQ(sdWatchdogPeriod(), std::chrono::microseconds{5'000'000});
    ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
    EXPECT_FALSE(sdWatchdogPeriod());
    ::unsetenv("WATCHDOG_PID");
    ::setenv("WATCHDOG_USEC", "soon", 1);
    EXPECT_FALSE(sdWatchdogPeriod());
}

}  // namespace
}  // namespace tern::shared
