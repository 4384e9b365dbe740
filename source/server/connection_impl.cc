#include "source/server/connection_impl.h"

#include <sys/socket.h>

#include <cerrno>

#include "source/common/access_log/access_log.h"
#include "source/common/logging/logger.h"

namespace mcproxy::server {
namespace {

// Before a terminal filter takes the connection, only peeking filters run, and each bounds
// what it waits for (tls_inspector: max_client_hello_bytes). This is a backstop: above it the
// connection stops reading rather than buffering without bound.
constexpr size_t kMaxBufferedBeforeTakeover = 128 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

ConnectionImpl::ConnectionImpl(ConnectionOwner& owner, worker::Resources& worker,
                               network::UniqueFd fd, uint64_t id,
                               std::shared_ptr<const snapshot::Snapshot> snapshot,
                               const snapshot::CompiledListener& listener,
                               const network::Address& remote, const network::Address& local)
    : owner_(owner),
      worker_(worker),
      dispatcher_(worker.dispatcher()),
      fd_(std::move(fd)),
      snapshot_(std::move(snapshot)),
      listener_(listener) {
  stream_info_.connection_id = id;
  stream_info_.listener_name = listener.name;
  stream_info_.downstream_remote = remote;
  stream_info_.downstream_local = local;
  stream_info_.real_client = remote;
  stream_info_.start_time = dispatcher_.now();
  listener_.stats.connections.inc();
  listener_.stats.active.inc();
}

ConnectionImpl::~ConnectionImpl() = default;

void ConnectionImpl::start() {
  read_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kRead, [this] { onReadReady(); });
  filters_ = std::make_unique<network::FilterManager>(*this, listener_.filter_factories);
  filters_->start();
}

void ConnectionImpl::drain() { filters_->drain(); }

void ConnectionImpl::onFiltersReady() {
  if (!end_stream_) read_event_->enable();
}

void ConnectionImpl::onTransportTaken() { read_event_->disable(); }

void ConnectionImpl::onReadReady() {
  char chunk[kReadChunk];
  const ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close(network::CloseReason::kDownstreamReset);
    return;
  }
  if (n == 0) {
    end_stream_ = true;
    read_event_->disable();
  } else {
    read_buffer_.append(chunk, static_cast<size_t>(n));
    if (read_buffer_.size() >= kMaxBufferedBeforeTakeover) read_event_->disable();
  }
  filters_->onData();
}

void ConnectionImpl::close(network::CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  stream_info_.close_reason = reason;
  if (read_event_) read_event_->disable();
  if (filters_) filters_->onClose();
  fd_.reset();
  stream_info_.end_time = dispatcher_.now();
  if (listener_.access_log && access_log::logsConnection(stream_info_)) {
    access_log::write(worker_.accessLog(), *listener_.access_log,
                      listener_.access_log->connectionLine(stream_info_));
  }
  listener_.stats.countClose(reason);
  listener_.stats.active.dec();
  LOG_DEBUG << "connection " << id() << " from " << stream_info_.real_client.toString() << " sni=\""
            << stream_info_.requested_server_name
            << "\" closed: " << network::closeReasonName(reason) << " (rx "
            << stream_info_.bytes_from_downstream << " B, tx " << stream_info_.bytes_to_downstream
            << " B)";
  owner_.onConnectionClosed(*this);
}

}  // namespace mcproxy::server
