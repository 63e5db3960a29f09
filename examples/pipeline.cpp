// pipeline — generators chained like Beazley's `follow | grep | print` pipelines.
//
// A source yields log lines, a filter keeps the errors, a transform extracts the
// code; each stage is a Generator whose body runs as its own tasklet and pulls
// from the stage before it. Nothing is computed ahead of the consumer by more
// than one item, and an exception in any stage reaches the end of the pipe.
#include <corelet/corelet.hpp>

#include <cstdio>
#include <map>
#include <string>

corelet::Generator<std::string> log_lines(int n) {
  return corelet::Generator<std::string>([n](corelet::Yield<std::string>& yield) {
    static const char* levels[] = {"INFO", "WARN", "ERROR"};
    for (int i = 0; i < n; ++i)
      yield(std::string(levels[(i * 7) % 3]) + " request " + std::to_string(i) + " code=" +
            std::to_string(500 + (i * 13) % 4));
  });
}

corelet::Generator<std::string> grep(corelet::Generator<std::string>& in, std::string pattern) {
  return corelet::Generator<std::string>([&in, pattern](corelet::Yield<std::string>& yield) {
    for (auto& line : in)
      if (line.find(pattern) != std::string::npos) yield(line);
  });
}

corelet::Generator<int> codes(corelet::Generator<std::string>& in) {
  return corelet::Generator<int>([&in](corelet::Yield<int>& yield) {
    for (auto& line : in) yield(std::stoi(line.substr(line.find("code=") + 5)));
  });
}

int main() {
  return corelet::run([] {
    auto lines = log_lines(60);
    auto errors = grep(lines, "ERROR");
    auto error_codes = codes(errors);
    std::map<int, int> histogram;
    for (int code : error_codes) ++histogram[code];
    for (auto [code, count] : histogram) std::printf("code %d: %d errors\n", code, count);
  });
}
