#pragma once

// Fakes for network filter tests: a connection and a worker without sockets, and a scripted
// filter that records what the chain does with it.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "source/common/access_log/access_log.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/filter.h"
#include "source/common/network/filter_manager.h"
#include "source/common/network/transfer_pool.h"
#include "source/common/upstream/conn_pool.h"
#include "source/common/worker/resources.h"
#include "source/common/worker/standalone_resources.h"

namespace mcproxy::test {

// A worker's resources, on the test's own dispatcher. Its access log writer is never started:
// a test pops what was queued (accessLog().pop()).
using FakeWorker = worker::StandaloneResources;

// A downstream connection without a socket: what a filter chain sees of one.
class FakeConnection : public network::Connection, public network::FilterManagerConnection {
 public:
  FakeConnection() { stream_info_.connection_id = 7; }

  // network::Connection
  uint64_t id() const override { return stream_info_.connection_id; }
  int fd() const override { return -1; }
  event::Dispatcher& dispatcher() override { return worker_.dispatcher(); }
  worker::Resources& worker() override { return worker_; }
  network::StreamInfo& streamInfo() override { return stream_info_; }
  const access_log::AccessLog* accessLog() const override { return access_log; }
  void close(network::CloseReason reason) override {
    if (closed_) return;
    closed_ = true;
    close_reason = reason;
    if (manager != nullptr) manager->onClose();
  }
  bool closed() const override { return closed_; }

  // network::FilterManagerConnection
  network::Connection& connection() override { return *this; }
  buffer::Buffer& readBuffer() override { return read_buffer; }
  bool readEnded() const override { return read_ended; }
  void onFiltersReady() override { filters_ready = true; }
  void onTransportTaken() override { transport_taken = true; }

  network::FilterManager* manager = nullptr;
  const access_log::AccessLog* access_log = nullptr;
  buffer::Buffer read_buffer;
  bool read_ended = false;
  bool filters_ready = false;
  bool transport_taken = false;
  network::CloseReason close_reason = network::CloseReason::kFinished;

 private:
  FakeWorker worker_;
  network::StreamInfo stream_info_;
  bool closed_ = false;
};

// A network filter that answers as its test says, writing "<name>.<call>" to a shared log.
class ScriptedReadFilter : public network::ReadFilter {
 public:
  ScriptedReadFilter(std::string name, std::vector<std::string>& log)
      : name_(std::move(name)), log_(log) {}

  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override {
    this->callbacks = &callbacks;
  }
  network::FilterStatus onNewConnection() override {
    log_.push_back(name_ + ".new");
    if (on_new) return on_new(*this);
    return network::FilterStatus::kContinue;
  }
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    log_.push_back(name_ + ".data(" + std::string(data.view()) + (end_stream ? ",end" : "") + ")");
    if (on_data) return on_data(*this, data);
    return network::FilterStatus::kContinue;
  }
  void onDrain() override { log_.push_back(name_ + ".drain"); }
  void onConnectionClose() override { log_.push_back(name_ + ".close"); }

  network::ReadFilterCallbacks* callbacks = nullptr;
  std::function<network::FilterStatus(ScriptedReadFilter&)> on_new;
  std::function<network::FilterStatus(ScriptedReadFilter&, buffer::Buffer&)> on_data;

 private:
  std::string name_;
  std::vector<std::string>& log_;
};

}  // namespace mcproxy::test
