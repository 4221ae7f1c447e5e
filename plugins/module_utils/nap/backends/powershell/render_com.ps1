# configmgr.nap win_nap_firewall, state: rendered: the COM script's steps (PowerShell 2.0 syntax, ASCII only).
# Order: read, refuse collisions, add and update, the lockout guard, then remove. A failing step stops the
# script before any removal; running it again completes the change.

function Update-NapComRule {
    param ($Have, $Want, $Differences)
    if (($Differences -contains 'Protocol') -and ([int]$Have.Protocol -eq 6 -or [int]$Have.Protocol -eq 17)) {
        # ports first back to any: the protocol cannot change under them (INetFwRule::put_Protocol)
        $Have.LocalPorts = '*'
        $Have.RemotePorts = '*'
    }
    foreach ($property in $napProperties) {
        if ($Differences -contains $property) { $Have.$property = $Want.$property }
    }
}

$policy = New-Object -ComObject HNetCfg.FwPolicy2
if ($policy.LocalPolicyModifyState -ne 0) {
    Write-Output ('configmgr.nap: warning: LocalPolicyModifyState is ' + $policy.LocalPolicyModifyState +
        ': Group Policy overrides local rules or inbound is blocked; these rules may not take effect')
}
$state = Read-NapRules
if ($state.Collisions.Count -gt 0) {
    Write-Output ('configmgr.nap: STOPPED: rule(s) outside the group ' + $group + ' carry owned name(s): ' +
        ($state.Collisions -join ', ') + '; the COM API removes rules by name. Rename or delete them; nothing was changed')
    exit 5
}
$added = 0
$updated = 0
$removals = New-Object -TypeName System.Collections.ArrayList
try {
    foreach ($spec in $wanted) {
        $want = New-NapComRule -Spec $spec
        if (-not $state.Owned.ContainsKey($spec.Name)) {
            $policy.Rules.Add($want)
            $added++
            Write-Output ('configmgr.nap: added ' + $spec.Name)
            continue
        }
        foreach ($have in $state.Owned[$spec.Name]) {
            $differences = @(Get-NapDifferences -Have $have -Want $want)
            if ($differences.Count -gt 0) {
                Update-NapComRule -Have $have -Want $want -Differences $differences
                $updated++
                Write-Output ('configmgr.nap: updated ' + $spec.Name + ' (' + ($differences -join ', ') + ')')
            }
        }
    }
}
catch {
    Write-Output ('configmgr.nap: STOPPED after ' + $added + ' added and ' + $updated + ' updated: ' +
        $_.Exception.Message + '; nothing was removed. Run the script again to complete the change')
    exit 1
}
foreach ($name in $state.Order) {
    $keep = 0
    foreach ($spec in $wanted) { if ($spec.Name -eq $name) { $keep = 1 } }
    # every copy of an unwanted name; the extra copies of a wanted one (all equal now)
    $count = $state.Owned[$name].Count - $keep
    for ($i = 0; $i -lt $count; $i++) { [void]$removals.Add($name) }
}
if ($removals.Count -gt 0 -and -not $SkipLockoutGuard) {
    $problem = Test-NapGuard
    if ($problem) {
        Write-Output ('configmgr.nap: STOPPED before removing ' + $removals.Count + ' rule(s): ' + $problem +
            '. Nothing was removed (' + $added + ' added, ' + $updated + ' updated); fix the rule, or run with -SkipLockoutGuard')
        exit 4
    }
}
$removed = 0
foreach ($name in $removals) {
    # INetFwRules::Remove takes a name; remove only while the rule found by that name is in the group
    # https://learn.microsoft.com/en-us/windows/win32/api/netfw/nf-netfw-inetfwrules-remove
    $have = Get-NapRuleByName -Name $name
    if ($null -ne $have -and [string]$have.Grouping -eq $group) {
        $policy.Rules.Remove($name)
        $removed++
        Write-Output ('configmgr.nap: removed ' + $name)
    }
}
Write-Output ('configmgr.nap: ' + $added + ' added, ' + $updated + ' updated, ' + $removed + ' removed; ' +
    $wanted.Count + ' rule(s) in group ' + $group)
