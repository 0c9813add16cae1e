using TunStack.Fuzz;

namespace TunStack.Tests.Robustness;

/// <summary>
/// Replays every input of the committed fuzz corpus (fuzz/corpus) and every crash the fuzzer found
/// (fuzz/crashes) through both harnesses, so what the fuzzer learned keeps being checked by the ordinary test run.
/// A crash input fails here until the bug it found is fixed.
/// </summary>
public class FuzzCorpusReplayTests
{
    private static readonly string FuzzDirectory = FindFuzzDirectory();

    private static string FindFuzzDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "fuzz", "corpus");
            if (Directory.Exists(candidate))
                return Path.Combine(dir.FullName, "fuzz");
        }
        throw new DirectoryNotFoundException($"no fuzz/corpus above {AppContext.BaseDirectory}");
    }

    private static TheoryData<string> Inputs(string folder)
    {
        var data = new TheoryData<string>();
        string root = Path.Combine(FuzzDirectory, folder);
        if (Directory.Exists(root))
            foreach (string file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
                if (Path.GetFileName(file) != "README.md")
                    data.Add(Path.GetRelativePath(FuzzDirectory, file));
        return data;
    }

    public static TheoryData<string> CorpusFiles() => Inputs("corpus");
    public static TheoryData<string> CrashFiles() => Inputs("crashes");

    [Fact]
    public void The_corpus_has_inputs_for_both_harnesses()
    {
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(FuzzDirectory, "corpus", "wire")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(FuzzDirectory, "corpus", "engine")));
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Corpus_input_passes_both_harnesses(string file) => ReplayBoth(file);

    [Theory]
    [MemberData(nameof(CrashFiles))]
    public void Crash_input_passes_both_harnesses(string file) => ReplayBoth(file);

    private static void ReplayBoth(string file)
    {
        byte[] input = File.ReadAllBytes(Path.Combine(FuzzDirectory, file));
        WireHarness.Run(input);
        EngineHarness.Run(input);
    }
}
