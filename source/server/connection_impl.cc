#include "source/server/connection_impl.h"

#include <sys/socket.h>

#include <cerrno>

#include "source/common/logging/logger.h"

namespace mcproxy::server {
namespace {

// Before a terminal filter takes the connection, only peeking filters run, and each bounds
// what it waits for (tls_inspector: max_client_hello_bytes). This is a backstop: above it the
// connection stops reading rather than buffering without bound.
constexpr size_t kMaxBufferedBeforeTakeover = 128 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

ConnectionImpl::ConnectionImpl(ConnectionOwner& owner, event::Dispatcher& dispatcher,
                               network::UniqueFd fd, uint64_t id,
                               std::shared_ptr<const snapshot::Snapshot> snapshot,
                               const snapshot::CompiledListener& listener,
                               const network::Address& remote, const network::Address& local)
    : owner_(owner),
      dispatcher_(dispatcher),
      fd_(std::move(fd)),
      snapshot_(std::move(snapshot)),
      listener_(listener) {
  stream_info_.connection_id = id;
  stream_info_.listener_name = listener.name;
  stream_info_.downstream_remote = remote;
  stream_info_.downstream_local = local;
  stream_info_.real_client = remote;
  stream_info_.start_time = dispatcher.now();
  listener_.stats.connections.inc();
  listener_.stats.active.inc();
}

ConnectionImpl::~ConnectionImpl() = default;

void ConnectionImpl::start() {
  filters_.reserve(listener_.filter_factories.size());
  for (size_t i = 0; i < listener_.filter_factories.size(); ++i) {
    filters_.push_back(std::make_unique<ActiveFilter>(*this, i, listener_.filter_factories[i]()));
    filters_.back()->filter->initializeReadFilterCallbacks(*filters_.back());
  }
  read_event_ = std::make_unique<event::IoEvent>(
      dispatcher_, fd_.get(), event::IoEvent::Kind::kRead, [this] { onReadReady(); });
  runNewConnection(0);
}

void ConnectionImpl::drain() {
  for (auto& active : filters_) {
    if (closed_) return;
    active->filter->onDrain();
  }
}

void ConnectionImpl::runNewConnection(size_t from) {
  for (size_t i = from; i < filters_.size(); ++i) {
    if (closed_) return;
    if (filters_[i]->filter->onNewConnection() == network::FilterStatus::kStopIteration) return;
  }
  if (closed_) return;
  new_connection_done_ = true;
  if (!read_buffer_.empty() || end_stream_) runData(0);
  if (!closed_ && !transport_taken_ && !end_stream_) read_event_->enable();
}

void ConnectionImpl::continueChain(size_t from) {
  if (closed_ || transport_taken_) return;
  if (!new_connection_done_) {
    runNewConnection(from);
  } else {
    runData(from);
  }
}

void ConnectionImpl::runData(size_t from) {
  for (size_t i = from; i < filters_.size(); ++i) {
    if (closed_ || transport_taken_) return;
    if (filters_[i]->filter->onData(read_buffer_, end_stream_) ==
        network::FilterStatus::kStopIteration) {
      return;
    }
  }
  if (!closed_ && !transport_taken_) close(network::CloseReason::kNoTerminalFilter);
}

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
  runData(0);
}

void ConnectionImpl::onTransportTaken() {
  transport_taken_ = true;
  read_event_->disable();
}

void ConnectionImpl::close(network::CloseReason reason) {
  if (closed_) return;
  closed_ = true;
  stream_info_.close_reason = reason;
  if (read_event_) read_event_->disable();
  for (auto& active : filters_) active->filter->onConnectionClose();
  fd_.reset();
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
