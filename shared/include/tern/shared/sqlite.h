#pragma once

// Ownership of SQLite handles, shared by every SQLite-backed component (the edge store, the
// ingest spool, the time-series store). Header-only: tern_shared itself does not link SQLite,
// the components that use it do.

#include <sqlite3.h>

#include <memory>

namespace tern::shared {

struct SqliteCloser {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

struct SqliteFinalizer {
    void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using SqliteStatement = std::unique_ptr<sqlite3_stmt, SqliteFinalizer>;

// Resets a reused statement however the scope is left, so it never holds a read open.
class ScopedStatement {
public:
    explicit ScopedStatement(const SqliteStatement& stmt) : stmt_(stmt.get()) {}
    ~ScopedStatement() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    ScopedStatement(const ScopedStatement&) = delete;
    ScopedStatement& operator=(const ScopedStatement&) = delete;
    sqlite3_stmt* operator*() const { return stmt_; }

private:
    sqlite3_stmt* stmt_;
};

}  // namespace tern::shared
