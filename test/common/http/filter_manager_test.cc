#include "source/common/http/filter_manager.h"

#include <gtest/gtest.h>

#include "test/mocks/http/filter.h"

namespace mcproxy::http {
namespace {

using test::ScriptedFilter;
using Log = std::vector<std::string>;

// A chain of scripted filters over fake stream callbacks. The last filter plays the terminal
// one (the router): tests make it answer with encodeResponse*() or a local reply.
class HttpFilterManagerTest : public ::testing::Test {
 protected:
  void chain(std::vector<std::string> names) {
    for (const std::string& name : names) {
      factories_.push_back(
          FilterFactory::of<ScriptedFilter>(name, [this, name](FilterCallbacks& cb) {
            auto filter = std::make_unique<ScriptedFilter>(name, log(), cb);
            filters_.push_back(filter.get());
            return filter;
          }));
    }
    manager_ = std::make_unique<FilterManager>(callbacks_, info_, factories_);
  }
  ScriptedFilter& filter(size_t index) { return *filters_[index]; }
  Log& log() { return callbacks_.log; }
  static HeaderMap request() {
    return {{":method", "POST"}, {":scheme", "https"}, {":path", "/"}, {":authority", "a.test"}};
  }
  void sendBody(const std::string& text, bool end) {
    buffer::Buffer body;
    body.append(text);
    manager_->decodeData(body, end);
  }
  // The terminal filter relays a backend's response.
  void respond(ScriptedFilter& terminal, const std::string& body) {
    terminal.callbacks.encodeResponseHeaders({{":status", "200"}}, false);
    buffer::Buffer data;
    data.append(body);
    terminal.callbacks.encodeResponseBody(data, true);
  }

  test::FakeManagerCallbacks callbacks_;
  network::StreamInfo connection_;
  StreamInfo info_{connection_};
  std::vector<FilterFactory> factories_;
  std::vector<ScriptedFilter*> filters_;
  std::unique_ptr<FilterManager> manager_;
};

TEST_F(HttpFilterManagerTest, RequestPhasesRunInOrderAndResponsePhasesInReverse) {
  chain({"a", "b", "router"});
  manager_->decodeHeaders(request(), false);
  sendBody("x", true);
  respond(filter(2), "ok");
  EXPECT_EQ(log(),
            (Log{"a.request_headers", "b.request_headers", "router.request_headers",
                 "a.request_body(x)(end)", "b.request_body(x)(end)", "router.request_body(x)(end)",
                 "router.response_headers", "b.response_headers", "a.response_headers",
                 "client.headers", "router.response_body(ok)(end)", "b.response_body(ok)(end)",
                 "a.response_body(ok)(end)", "client.body(end)"}));
  EXPECT_EQ(callbacks_.response_body, "ok");
  EXPECT_EQ(info_.response_status, 200);
  manager_->log();
  EXPECT_EQ(log().back(), "router.log");
}

TEST_F(HttpFilterManagerTest, AFilterThatStopsOnHeadersHoldsTheRequestUntilItContinues) {
  chain({"a", "auth", "router"});
  filter(1).request_headers = [](ScriptedFilter&) { return FilterStatus::kStopIteration; };
  manager_->decodeHeaders(request(), false);
  sendBody("early", false);  // arrives while held: waits at the start of the chain
  HeaderMap trailers{{"x-sum", "1"}};
  manager_->decodeTrailers(std::move(trailers));
  EXPECT_EQ(log(), (Log{"a.request_headers", "auth.request_headers"}));

  filter(1).callbacks.continueRequest();
  EXPECT_EQ(log(),
            (Log{"a.request_headers", "auth.request_headers", "router.request_headers",
                 "a.request_body(early)", "auth.request_body(early)", "router.request_body(early)",
                 "a.request_trailers", "auth.request_trailers", "router.request_trailers"}));
  // Another filter's continue, or a second one, changes nothing.
  filter(0).callbacks.continueRequest();
  filter(1).callbacks.continueRequest();
  EXPECT_EQ(log().size(), 9u);
}

TEST_F(HttpFilterManagerTest, AStoppedFilterResumesFromATimer) {
  chain({"delay", "router"});
  event::TimeoutQueue::Entry timer([this] { filter(0).callbacks.continueRequest(); });
  filter(0).request_headers = [&timer](ScriptedFilter& self) {
    self.callbacks.timeoutQueue().arm(timer, std::chrono::milliseconds(20));
    return FilterStatus::kStopIteration;
  };
  manager_->decodeHeaders(request(), true);
  EXPECT_EQ(log(), (Log{"delay.request_headers(end)"}));
  const auto started = std::chrono::steady_clock::now();
  while (log().size() < 2) callbacks_.runOnce();
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(15));
  EXPECT_EQ(log().back(), "router.request_headers(end)");
}

TEST_F(HttpFilterManagerTest, AStopOnABodyChunkHoldsItAndWhatFollows) {
  chain({"scan", "router"});
  int chunks = 0;
  filter(0).request_body = [&chunks](ScriptedFilter&) {
    return ++chunks == 1 ? FilterStatus::kStopIteration : FilterStatus::kContinue;
  };
  manager_->decodeHeaders(request(), false);
  sendBody("one", false);
  sendBody("two", true);
  EXPECT_EQ(log(),
            (Log{"scan.request_headers", "router.request_headers", "scan.request_body(one)"}));
  filter(0).callbacks.continueRequest();
  EXPECT_EQ(log(), (Log{"scan.request_headers", "router.request_headers", "scan.request_body(one)",
                        "router.request_body(one)", "scan.request_body(two)(end)",
                        "router.request_body(two)(end)"}));
}

TEST_F(HttpFilterManagerTest, AResponseFilterCanHoldTheResponseAndLetItGo) {
  chain({"a", "router"});
  filter(0).response_headers = [](ScriptedFilter&) { return FilterStatus::kStopIteration; };
  manager_->decodeHeaders(request(), true);
  respond(filter(1), "body");
  EXPECT_EQ(log(), (Log{"a.request_headers(end)", "router.request_headers(end)",
                        "router.response_headers", "a.response_headers"}));
  EXPECT_TRUE(callbacks_.response_headers.empty());
  filter(0).callbacks.continueResponse();
  EXPECT_EQ(callbacks_.response_body, "body");
  EXPECT_TRUE(callbacks_.response_complete);
}

TEST_F(HttpFilterManagerTest, ALocalReplyFromRequestHeadersIsSeenByTheFiltersBefore) {
  chain({"a", "deny", "b", "router"});
  filter(1).request_headers = [](ScriptedFilter& self) {
    self.callbacks.sendLocalReply(403, "no\n", {{"x-why", "test"}}, "denied");
    return FilterStatus::kStopIteration;
  };
  manager_->decodeHeaders(request(), false);
  EXPECT_EQ(log(), (Log{"a.request_headers", "deny.request_headers", "deny.response_headers",
                        "a.response_headers", "client.headers", "deny.response_body(no\n)(end)",
                        "a.response_body(no\n)(end)", "client.body(end)"}));
  EXPECT_EQ(callbacks_.response_headers.status(), 403);
  EXPECT_EQ(*callbacks_.response_headers.get("x-why"), "test");
  EXPECT_EQ(*callbacks_.response_headers.get("content-length"), "3");
  EXPECT_EQ(info_.response_detail, "denied");
  EXPECT_TRUE(info_.local_reply);
  // The request phases are over: later body goes nowhere, and its window opens again.
  const size_t before = log().size();
  sendBody("ignored", true);
  EXPECT_EQ(log().size(), before);
  EXPECT_EQ(callbacks_.released, 7u);
}

TEST_F(HttpFilterManagerTest, ALocalReplyFromTheRequestBodyAndTrailersPhases) {
  for (const bool from_trailers : {false, true}) {
    SCOPED_TRACE(from_trailers ? "trailers" : "body");
    callbacks_.log.clear();
    filters_.clear();
    factories_.clear();
    callbacks_.response_headers.clear();
    chain({"limit", "router"});
    auto reply = [](ScriptedFilter& self) {
      self.callbacks.sendLocalReply(413, "too big\n");
      return FilterStatus::kStopIteration;
    };
    (from_trailers ? filter(0).request_trailers : filter(0).request_body) = reply;
    manager_->decodeHeaders(request(), false);
    sendBody("data", false);
    if (from_trailers) manager_->decodeTrailers({{"x", "y"}});
    EXPECT_EQ(callbacks_.response_headers.status(), 413);
    EXPECT_EQ(std::count(log().begin(), log().end(), "router.response_headers"), 0);
  }
}

TEST_F(HttpFilterManagerTest, ALocalReplyFromAResponsePhaseReplacesTheBackendResponse) {
  chain({"a", "check", "router"});
  filter(1).response_headers = [](ScriptedFilter& self) {
    self.callbacks.sendLocalReply(502, "bad backend answer\n");
    return FilterStatus::kStopIteration;
  };
  manager_->decodeHeaders(request(), true);
  respond(filter(2), "secret");
  EXPECT_EQ(callbacks_.response_headers.status(), 502);
  EXPECT_EQ(callbacks_.response_body, "bad backend answer\n");
  // The reply went straight out: no filter saw it, and the backend's body was dropped.
  EXPECT_EQ(std::count(log().begin(), log().end(), "a.response_headers"), 0);
}

TEST_F(HttpFilterManagerTest, ALocalReplyAfterTheResponseStartedResetsTheStream) {
  chain({"router"});
  manager_->decodeHeaders(request(), true);
  filter(0).callbacks.encodeResponseHeaders({{":status", "200"}}, false);
  filter(0).callbacks.sendLocalReply(502, "upstream reset\n");
  EXPECT_EQ(callbacks_.resets, 1);
  EXPECT_EQ(callbacks_.response_headers.status(), 200);
  EXPECT_TRUE(filter(0).callbacks.ended());
  // Calls after the end are no-ops.
  buffer::Buffer more;
  more.append("x");
  filter(0).callbacks.encodeResponseBody(more, true);
  EXPECT_TRUE(callbacks_.response_body.empty());
}

TEST_F(HttpFilterManagerTest, AFilterThatResetsEndsTheStream) {
  chain({"a", "b", "router"});
  filter(0).request_headers = [](ScriptedFilter& self) {
    self.callbacks.resetStream();
    return FilterStatus::kStopIteration;
  };
  manager_->decodeHeaders(request(), true);
  EXPECT_EQ(log(), (Log{"a.request_headers(end)"}));
  EXPECT_EQ(callbacks_.resets, 1);
}

TEST_F(HttpFilterManagerTest, BodyBytesAFilterTakesOutAreReleasedAtOnce) {
  chain({"strip", "router"});
  filter(0).request_body = [](ScriptedFilter& self) {
    self.current_body->drain(2);
    return FilterStatus::kContinue;
  };
  filter(1).request_body = [](ScriptedFilter& self) {  // takes what it forwards, as the router
    self.current_body->clear();
    return FilterStatus::kContinue;
  };
  manager_->decodeHeaders(request(), false);
  sendBody("abcdef", true);
  EXPECT_EQ(callbacks_.released, 2u);  // the router reports the rest as it forwards it
  EXPECT_EQ(log().back(), "router.request_body(cdef)(end)");
  filter(1).callbacks.onRequestBodyForwarded(4);
  EXPECT_EQ(callbacks_.released, 6u);
}

// A filter that overrides one phase.
class HeadersOnlyFilter : public StreamFilter {
 public:
  FilterStatus onRequestHeaders(HeaderMap&, bool) override { return FilterStatus::kContinue; }
};

TEST_F(HttpFilterManagerTest, AFilterIsCalledOnlyInThePhasesItImplements) {
  static_assert(phasesOf<HeadersOnlyFilter>() == kRequestHeadersPhase);
  static_assert(phasesOf<ScriptedFilter>() == kAllPhases);
  int made = 0;
  factories_.push_back(FilterFactory::of<HeadersOnlyFilter>("h", [&made](FilterCallbacks&) {
    ++made;
    return std::make_unique<HeadersOnlyFilter>();
  }));
  factories_.push_back(FilterFactory::of<ScriptedFilter>("router", [this](FilterCallbacks& cb) {
    auto filter = std::make_unique<ScriptedFilter>("router", log(), cb);
    filters_.push_back(filter.get());
    return filter;
  }));
  EXPECT_EQ(factories_[0].phases, static_cast<uint32_t>(kRequestHeadersPhase));
  manager_ = std::make_unique<FilterManager>(callbacks_, info_, factories_);
  EXPECT_EQ(made, 1);
  manager_->decodeHeaders(request(), false);
  sendBody("b", true);
  respond(filter(0), "r");
  EXPECT_EQ(callbacks_.response_body, "r");
}

}  // namespace
}  // namespace mcproxy::http
