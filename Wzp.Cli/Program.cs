Console.Error.WriteLine("wzp: the command line is not built yet (issue 6).");
return 1;
